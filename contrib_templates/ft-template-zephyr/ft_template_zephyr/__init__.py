"""ft-core plugin: the ``zephyr`` chat template of HuggingFaceH4/zephyr-7b-beta.

A third-party template package: it depends only on ft-core's public API (``hookimpl``, ``Register`` and
``ChatTemplate`` from ``ft_core.api``) and is found through its ``ft_core`` entry point.
"""

from ft_core.api import ChatTemplate, Register, hookimpl

__version__ = "0.2.0"

#: ``<|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n{answer}</s>\n``; renders exactly what the
#: official zephyr-7b-beta template renders.
ZEPHYR = r"""{%- for message in messages %}
    {%- if message['role'] in ('system', 'user', 'assistant') %}
        {{- '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}
    {%- endif %}
    {%- if loop.last and add_generation_prompt %}
        {{- '<|assistant|>\n' }}
    {%- endif %}
{%- endfor %}
"""


@hookimpl
def ft_register_chat_templates(register: Register[ChatTemplate]) -> None:
    """Register ``zephyr``."""
    register(
        "zephyr",
        ChatTemplate(
            jinja=ZEPHYR, description="Zephyr (HuggingFaceH4/zephyr-7b-beta): <|user|> / <|assistant|> turns"
        ),
    )
