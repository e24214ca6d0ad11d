"""The official chat template of llava-hf/llava-1.5-7b-hf, verbatim."""

from __future__ import annotations

#: ``llava-hf/llava-1.5-7b-hf`` ``chat_template.json`` (identical in ``llava-hf/llava-1.5-13b-hf`` and
#: ``llava-hf/llava-v1.6-vicuna-*-hf``): ``USER: <image>\n... ASSISTANT: ...`` with every content part followed by a
#: space; it takes content parts only (a plain string content renders nothing), adds no BOS and no EOS.
LLAVA = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in "
    "message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'ASSISTANT:' }}{% endif %}"
)
