"""The ``baichuan2`` chat template.

Baichuan2-Chat publishes no Jinja chat template: its prompt is built in Python by ``build_chat_input`` in the
model's ``generation_utils.py`` (system text, then ``<reserved_106>`` + user / ``<reserved_107>`` + assistant
turns, then ``<reserved_107>`` to prompt an answer). This Jinja renders the same text.
"""

BAICHUAN2 = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if not loop.first %}{{ raise_exception('Baichuan2 takes a system message only first') }}{% endif %}"
    "{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<reserved_106>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<reserved_107>{{ message['content'] }}"
    "{% else %}{{ raise_exception('Baichuan2 has no role ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<reserved_107>{% endif %}"
)
