"""The ``falcon`` chat template.

falcon-7b-instruct / falcon-40b-instruct publish no chat template. falcon-180B-chat's model card gives its
prompt format (``System: ...``, ``User: ...``, ``Falcon: ...`` lines), and LLaMA-Factory's ``falcon`` template,
whose name ft-core keeps, writes ``User: {user}\\nFalcon:`` then ``{answer}\\n``. This template follows
LLaMA-Factory for the turns, writes a system message as falcon-180B-chat's ``System: {system}\\n`` line, and ends
each answer with EOS (the token Falcon instruct models end an answer with; LLaMA-Factory trains it through
``efficient_eos``).
"""

FALCON = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% if not loop.first %}{{ raise_exception('Falcon takes a system message only first') }}{% endif %}"
    "{{ 'System: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\nFalcon:' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + '\\n' }}"
    "{% else %}{{ raise_exception('Falcon has no role ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
)
