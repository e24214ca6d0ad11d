"""The official chat templates of Meta's Llama chat models, verbatim (``jinja/*.jinja`` package data).

Each file is the ``chat_template`` of the model's published ``tokenizer_config.json``, byte for byte; the tests
compare them with the copies in ``tests/official`` and render golden conversations with both.
"""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return (files("ft_core_llama") / "jinja" / f"{name}.jinja").read_text(encoding="utf-8")


#: Llama-2-chat (meta-llama/Llama-2-*-chat-hf): ``<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer}
#: </s>``; the system prompt joins the first user turn; user and assistant turns must alternate.
LLAMA2 = _read("llama2")

#: Llama 3 Instruct (meta-llama/Meta-Llama-3-8B/70B-Instruct): ``<|start_header_id|>{role}<|end_header_id|>\n\n
#: {content}<|eot_id|>`` per message, ``<|begin_of_text|>`` first; no tool format.
LLAMA3 = _read("llama3")

#: Llama 3.1 / 3.3 Instruct: the Llama 3 turns plus a system header (``Cutting Knowledge Date`` / ``Today Date:
#: {date_string}``), JSON tool calls ``{"name": ..., "parameters": ...}``, tool results in ``ipython`` turns and
#: built-in tools (``builtin_tools``, ``<|python_tag|>``, ``<|eom_id|>``).
LLAMA3_1 = _read("llama3.1")

#: Llama 3.2 1B/3B Instruct: as Llama 3.1 without built-in tools; ``Today Date`` is ``strftime_now`` unless
#: ``date_string`` is given (ft-core gives it: renders are deterministic).
LLAMA3_2 = _read("llama3.2")
