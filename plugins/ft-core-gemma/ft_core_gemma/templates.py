"""Google Gemma chat templates, verbatim from the models' published ``tokenizer_config.json``.

Standard library only. The tests keep the same text under ``tests/official/`` with its sources.
"""

#: google/gemma-7b-it, google/gemma-2-{2b,9b,27b}-it, google/codegemma-7b-it: no system role (the template
#: raises on one), roles must alternate, the assistant role is written ``model``; contents are trimmed.
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

#: google/gemma-3-{1b,4b,12b,27b}-it: a system message is folded into the first user turn (followed by a blank
#: line); image content parts render as ``<start_of_image>``.
GEMMA3 = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    "
    "{%- if messages[0]['content'] is string -%}\n        "
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n        "
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    "
    '{%- set first_user_prefix = "" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n'
    "{%- for message in loop_messages -%}\n    "
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        "
    '{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        "
    "{%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    "
    "{%- endif -%}\n    "
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n    "
    "{%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    "
    "{%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        "
    "{{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)
