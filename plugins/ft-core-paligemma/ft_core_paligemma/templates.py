"""The ``paligemma`` template: PaliGemma's prompt format as a chat template.

PaliGemma publishes no chat template. Its format is the one transformers' ``PaliGemmaProcessor`` builds (and
big_vision trained with): the image tokens, ``<bos>``, the prompt (the "prefix"), ``\\n``; then the answer (the
"suffix") and ``<eos>``. This template renders exactly that for a user turn with its images and the answer;
further turns continue as ``prompt\\n`` / ``answer<eos>`` (LLaMA-Factory's ``paligemma`` multi-turn layout). All
images go in front of ``<bos>``, so they must belong to the first user turn; there is no system or tool role.
"""

from __future__ import annotations

PALIGEMMA = (
    "{%- set ns = namespace(images='') -%}"
    "{%- if messages and messages[0]['content'] is not string -%}"
    "{%- for part in messages[0]['content'] if part['type'] == 'image' -%}"
    "{%- set ns.images = ns.images + '<image>' -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- ns.images + bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}"
    "{%- set text = message['content'] -%}"
    "{%- else -%}"
    "{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{%- if not loop.first and message['content'] | selectattr('type', 'equalto', 'image') | list -%}"
    "{{- raise_exception('PaliGemma takes images in the first user turn only') -}}"
    "{%- endif -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- text + '\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- text + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('PaliGemma has user and assistant turns only, no ' + message['role'] + ' role') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
