"""ft-core plugin: generic chat templates ``default``, ``alpaca``, ``vicuna``, ``empty`` and ``chatml``.

``default``, ``alpaca``, ``vicuna`` and ``empty`` are formats, not any model's own template: they set
``tokenizer_template_may_differ`` so the start-up equality check against a tokenizer's template is skipped.
``chatml`` is the standard ChatML template and is checked like any model template.
"""

from functools import partial

from ft_core.api import ChatTemplate, Register, hookimpl
from ft_core_templates_generic.templates import ALPACA, CHATML, DEFAULT, EMPTY, VICUNA

__version__ = "0.2.0"


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``default``, ``alpaca``, ``vicuna``, ``empty`` and ``chatml``."""
    generic = partial(ChatTemplate, tokenizer_template_may_differ=True)
    register("default", generic(jinja=DEFAULT, description="Human: / Assistant: turns"))
    register("alpaca", generic(jinja=ALPACA, description="### Instruction: / ### Response:"))
    register("vicuna", generic(jinja=VICUNA, description="Vicuna v1.1: USER: / ASSISTANT:"))
    register("empty", generic(jinja=EMPTY, description="contents only, no formatting"))
    register(
        "chatml",
        ChatTemplate(
            jinja=CHATML, stop_words=("<|im_end|>",), description="ChatML: <|im_start|>role ... <|im_end|>"
        ),
    )
