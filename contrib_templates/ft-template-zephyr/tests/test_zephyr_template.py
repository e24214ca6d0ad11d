"""Tests of ft-template-zephyr, written with ft-core's public testing API only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ft_template_zephyr
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.import_light import check_import_light


def test_registers_zephyr(make_plugins: Callable[..., Any]) -> None:
    plugins = make_plugins(ft_template_zephyr, distribution="ft-template-zephyr")
    assert plugins.names("chat_template") == ["zephyr"]
    assert plugins.registration("chat_template", "zephyr").distribution == "ft-template-zephyr"


def test_conformance(make_plugins: Callable[..., Any], tiny_tokenizer: Any) -> None:
    template = make_plugins(ft_template_zephyr).get("chat_template", "zephyr")
    check_chat_template(template, tiny_tokenizer, "zephyr")


def test_rendering(make_plugins: Callable[..., Any], tiny_tokenizer: Any) -> None:
    template = make_plugins(ft_template_zephyr).get("chat_template", "zephyr")
    messages = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}]
    eos = tiny_tokenizer.eos_token
    text = tiny_tokenizer.apply_chat_template(messages, chat_template=template.jinja, tokenize=False)
    assert text == f"<|user|>\nHi!{eos}\n<|assistant|>\nHello.{eos}\n"
    prompt = tiny_tokenizer.apply_chat_template(
        messages[:1], chat_template=template.jinja, tokenize=False, add_generation_prompt=True
    )
    assert prompt == f"<|user|>\nHi!{eos}\n<|assistant|>\n"


def test_registration_is_import_light() -> None:
    check_import_light("ft_template_zephyr")
