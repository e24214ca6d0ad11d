"""The ``yuan`` chat template.

Yuan 2.0 publishes no Jinja chat template. Its model card prompts with ``question + "<sep>"`` and the model
answers up to ``<eod>``. Multi-turn conversations follow LLaMA-Factory's ``yuan`` template, the format the
ft-core template names come from: ``{user}<sep>`` then ``{answer}<eod>\\n``; a system message's text goes first.
"""

YUAN = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if not loop.first %}{{ raise_exception('Yuan takes a system message only first') }}{% endif %}"
    "{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ message['content'] + '<sep>' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + '<eod>\\n' }}"
    "{% else %}{{ raise_exception('Yuan has no role ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
)
