"""OLMo 2 chat template, verbatim from the model's published ``tokenizer_config.json``.

Standard library only. The tests keep the same text under ``tests/official/`` with its sources.
"""

#: allenai/OLMo-2-1124-7B-Instruct (and the other OLMo 2 Instruct / SFT / DPO models; the Tülu 3 format):
#: ``<|system|>``, ``<|user|>`` and ``<|assistant|>`` headers on their own line; an assistant turn ends with
#: ``eos_token`` (plus a newline when another turn follows).
OLMO = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}"
    "{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}"
    "{% if not loop.last %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}{% else %}"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)
