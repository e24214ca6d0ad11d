"""Cohere Command R chat template, verbatim from the model's published ``tokenizer_config.json``.

Standard library only. The tests keep the same text under ``tests/official/`` with its sources.
"""

#: CohereForAI/c4ai-command-r-v01 (and c4ai-command-r-plus): the ``default`` entry of the tokenizer's named chat
#: templates. (Its ``tool_use`` and ``rag`` entries are separate prompt builders and are not registered.) A system
#: message becomes a ``<|SYSTEM_TOKEN|>`` turn (the built-in default preamble is switched off by
#: ``false == true``); user and assistant turns must alternate and are stripped.
COHERE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% elif false == true %}"
    "{% set loop_messages = messages %}"
    "{% set system_message = 'You are Command-R, a brilliant, sophisticated, AI-assistant train"
    "ed to assist human users by providing thorough responses. You are trained by Cohere.' %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% if system_message != false %}"
    "{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}"
    "{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}"
)
