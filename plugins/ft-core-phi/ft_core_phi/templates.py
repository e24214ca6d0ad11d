"""Microsoft Phi chat templates.

Standard library only. The official Jinja of each is kept verbatim under ``tests/official/`` with its sources;
the tests show where these differ from it and why.
"""

#: microsoft/Phi-3-mini-4k-instruct (also Phi-3-mini-128k, Phi-3-medium, Phi-3.5-mini): the official template
#: verbatim except that a whole conversation no longer ends with ``eos_token`` (the official
#: ``{% else %}{{ eos_token }}``): that token would sit between a turn and the next turn's header, so earlier turns
#: would render differently inside a longer conversation (not prefix-stable). Turns end with ``<|end|>`` (stop word).
PHI = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

#: microsoft/phi-4: verbatim (``<|im_start|>role<|im_sep|>...<|im_end|>``, no newlines).

PHI4 = (
    "{% for message in messages %}{% if (message['role'] == 'system') %}"
    "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'user') %}"
    "{{'<|im_start|>user<|im_sep|>' + message['content'] + '<|im_end|>'}}"
    "{% elif (message['role'] == 'assistant') %}"
    "{{'<|im_start|>assistant<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)

#: microsoft/Phi-4-mini-instruct: the official template with three deliberate differences.
#: (1) No final ``eos_token`` (see ``PHI``).
#: (2) The run's tools (the Hugging Face ``tools`` argument) render as the official template renders a system
#: message's ``tools`` string: ``<|system|>{system}<|tool|>[{function}, ...]<|/tool|><|end|>`` (an empty system turn
#: is added when there is none); a system message's own ``tools`` string still renders as before.
#: (3) An assistant turn's ``tool_calls`` render after its content as
#: ``<|tool_call|>[{"name": ..., "arguments": {...}}]<|/tool_call|>``, the format Phi-4-mini emits.
#: Tool results (role ``tool``) render as the official template renders any role: ``<|tool|>{result}<|end|>``.
PHI4_MINI = (
    "{%- if tools -%}"
    "{%- set ns = namespace(items=[]) -%}"
    "{%- for tool in tools -%}"
    "{%- set ns.items = ns.items + [(tool['function'] if tool['function'] is defined else tool) | tojson] -%}"
    "{%- endfor -%}"
    "{%- set tool_list = '[' + ns.items | join(', ') + ']' -%}"
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|system|><|tool|>' + tool_list + '<|/tool|><|end|>' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' and tools -%}"
    "{{- '<|system|>' + message['content'] + '<|tool|>' + tool_list + '<|/tool|><|end|>' -}}"
    "{%- elif message['role'] == 'system' and 'tools' in message and message['tools'] is not none -%}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools']"
    " + '<|/tool|>' + '<|end|>' -}}"
    "{%- elif message['role'] == 'assistant' and message['tool_calls'] is defined"
    " and message['tool_calls'] -%}"
    "{{- '<|assistant|>' + message['content'] + '<|tool_call|>[' -}}"
    "{%- for call in message['tool_calls'] -%}"
    "{%- set function = call['function'] if call['function'] is defined else call -%}"
    "{{- '{\"name\": ' + function['name'] | tojson + ', \"arguments\": ' -}}"
    "{%- if function['arguments'] is string -%}{{- function['arguments'] -}}"
    "{%- else -%}{{- function['arguments'] | tojson -}}{%- endif -%}"
    "{{- '}' + ('' if loop.last else ', ') -}}"
    "{%- endfor -%}"
    "{{- ']<|/tool_call|><|end|>' -}}"
    "{%- else -%}"
    "{{- '<|' + message['role'] + '|>' + message['content'] + '<|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)
