"""The chat templates of Mistral AI's instruct models (``jinja/*.jinja`` package data).

- ``mistral``: the official template of Mistral-7B-Instruct-v0.1/v0.2 and Mixtral-8x7B-Instruct-v0.1, verbatim.
- ``mistral_v3`` / ``mistral_tekken``: the official templates of Mistral-7B-Instruct-v0.3 / Mixtral-8x22B-Instruct
  (v3 tokenizer) and Mistral-Nemo-Instruct-2407 (tekken), with two deliberate changes marked ``ft-core:`` in the
  Jinja: (1) the system prompt is also written into the user turn right before the final assistant turn (the
  official template writes it only into a *last* user message, i.e. at inference, and drops it from every
  conversation that ends with an answer, so training would never see it); (2) tool calls and results without
  ids get deterministic ones (the official template raises: ft-core's conversations carry no ids). Whatever the
  official template renders (generation prompts; conversations without system prompt; calls with ids) renders
  identically.
- ``mistral_small``: the official template of Mistral-Small-24B-Instruct-2501 (v7), with the date of its default
  system prompt taken from ``date_string`` when given (the official one always uses today's date).
"""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return (files("ft_core_mistral") / "jinja" / f"{name}.jinja").read_text(encoding="utf-8")


MISTRAL = _read("mistral")
MISTRAL_V3 = _read("mistral_v3")
MISTRAL_TEKKEN = _read("mistral_tekken")
MISTRAL_SMALL = _read("mistral_small")
