"""ft-core plugin: generic chat templates ``default``, ``alpaca``, ``vicuna``, ``empty`` and ``chatml``.

``default``, ``alpaca``, ``vicuna`` and ``empty`` are formats, not any model's own template: they set
``tokenizer_template_may_differ`` so the start-up equality check against a tokenizer's template is skipped.
``chatml`` is the standard ChatML template and is checked like any model template.
"""

from ft_core.api import ChatTemplate, Register, hookimpl
from ft_core_templates_generic.templates import ALPACA, CHATML, DEFAULT, EMPTY, VICUNA

__version__ = "0.2.0"


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``default``, ``alpaca``, ``vicuna``, ``empty`` and ``chatml``."""
    generic = {"tokenizer_template_may_differ": True}
    register("default", ChatTemplate(jinja=DEFAULT, description="Human: / Assistant: turns", **generic))
    register("alpaca", ChatTemplate(jinja=ALPACA, description="### Instruction: / ### Response:", **generic))
    register("vicuna", ChatTemplate(jinja=VICUNA, description="Vicuna v1.1: USER: / ASSISTANT:", **generic))
    register("empty", ChatTemplate(jinja=EMPTY, description="contents only, no formatting", **generic))
    register(
        "chatml",
        ChatTemplate(
            jinja=CHATML, stop_words=("<|im_end|>",), description="ChatML: <|im_start|>role ... <|im_end|>"
        ),
    )
