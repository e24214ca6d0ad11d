"""The ``yi_vl`` chat template.

Yi-VL publishes no Jinja chat template: its prompt is built in Python by ``Conversation.get_prompt`` (separator
style ``SINGLE``, ``sep="###"``) in 01-ai/Yi ``VL/llava/conversation.py``: the system prompt, ``"\\n\\n### "``, then
per turn ``role + ": " + message + "\\n### "``, and ``"Assistant:"`` to prompt an answer. This Jinja renders the
same text, with the ``mm_default`` system prompt when the conversation has none.
"""

#: ``mm_default_conv.system`` of 01-ai/Yi ``VL/llava/conversation.py``.
YI_VL_SYSTEM = (
    "This is a chat between an inquisitive human and an AI assistant. "
    "Assume the role of the AI assistant. "
    "Read all the images carefully, and respond to the human's questions with informative, helpful, detailed and "
    "polite answers. "
    "这是一个好奇的人类和一个人工智能助手之间的对话。"
    "假设你扮演这个AI助手的角色。仔细阅读所有的图像，并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。"
)

YI_VL = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}"
    "{% set system = '" + YI_VL_SYSTEM.replace("'", "\\'") + "' %}{% set loop_messages = messages %}"
    "{% endif %}"
    "{{ system + '\\n\\n### ' }}"
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n### ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + '\\n### ' }}"
    "{% else %}{{ raise_exception('Yi-VL has no role ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
