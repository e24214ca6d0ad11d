"""The ``xverse`` chat template.

XVERSE-13B-Chat publishes no Jinja chat template: its prompt is built in Python by ``_build_chat_input`` in the
model's ``modeling_xverse.py`` (``"Human: " + user + "\\n\\n"``, ``"Assistant: " + answer`` followed by EOS, and
``"Assistant: "`` to prompt an answer; other roles raise). This Jinja renders the same text.
"""

XVERSE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('XVERSE-Chat has no role ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)
