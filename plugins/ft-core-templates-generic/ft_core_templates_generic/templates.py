"""Jinja sources of the generic chat templates (Hugging Face ``chat_template`` dialect).

``default`` and ``alpaca`` follow the formats of LLaMA-Factory's templates of the same names (``alpaca`` puts
``\\n\\n`` after any system prompt, not only after its default one); ``vicuna`` is FastChat's v1.1 format;
``empty`` concatenates the contents; ``chatml`` is the standard ChatML template many models ship verbatim.
Tool results (``tool`` role) render like user turns; assistant tool calls are refused, since these formats
have no syntax for them.
"""

DEFAULT = r"""{%- for message in messages %}
    {%- if message['tool_calls'] is defined and message['tool_calls'] %}
        {{- raise_exception('the default chat template has no syntax for tool calls') }}
    {%- endif %}
    {%- if message['role'] == 'system' %}
        {{- 'System: ' + message['content'] + eos_token + '\n' }}
    {%- elif message['role'] in ('user', 'tool') %}
        {{- 'Human: ' + message['content'] + eos_token + '\n' }}
    {%- elif message['role'] == 'assistant' %}
        {{- 'Assistant:' + message['content'] + eos_token + '\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- 'Assistant:' }}
{%- endif %}
"""

ALPACA = r"""{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = 'Below is an instruction that describes a task. '
        'Write a response that appropriately completes the request.' %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- system_message + '\n\n' }}
{%- for message in loop_messages %}
    {%- if message['tool_calls'] is defined and message['tool_calls'] %}
        {{- raise_exception('the alpaca chat template has no syntax for tool calls') }}
    {%- endif %}
    {%- if message['role'] in ('user', 'tool') %}
        {{- '### Instruction:\n' + message['content'] + '\n\n' }}
    {%- elif message['role'] == 'assistant' %}
        {{- '### Response:\n' + message['content'] + eos_token + '\n\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '### Response:\n' }}
{%- endif %}
"""

VICUNA = r"""{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set system_message = 'A chat between a curious user and an artificial intelligence assistant. '
        "The assistant gives helpful, detailed, and polite answers to the user's questions." %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- system_message + ' ' }}
{%- for message in loop_messages %}
    {%- if message['tool_calls'] is defined and message['tool_calls'] %}
        {{- raise_exception('the vicuna chat template has no syntax for tool calls') }}
    {%- endif %}
    {%- if message['role'] in ('user', 'tool') %}
        {{- 'USER: ' + message['content'] + ' ' }}
    {%- elif message['role'] == 'assistant' %}
        {{- 'ASSISTANT: ' + message['content'] + eos_token }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- 'ASSISTANT:' }}
{%- endif %}
"""

EMPTY = r"""{%- for message in messages %}
    {%- if message['tool_calls'] is defined and message['tool_calls'] %}
        {{- raise_exception('the empty chat template has no syntax for tool calls') }}
    {%- endif %}
    {{- message['content'] }}
{%- endfor %}
"""

CHATML = r"""{%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""
