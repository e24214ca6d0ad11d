"""Tests of the ft-core-templates-generic plugin: registration and template conformance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_templates_generic
from ft_core.testing.conformance import check_chat_template
from ft_core.testing.import_light import check_import_light

GENERIC = ("default", "alpaca", "vicuna", "empty")


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_templates_generic, distribution="ft-core-templates-generic")


def test_registers_templates(plugins: Any) -> None:
    assert plugins.names("chat_template") == sorted([*GENERIC, "chatml"])
    for name in GENERIC:
        assert plugins.get("chat_template", name).tokenizer_template_may_differ
    assert not plugins.get("chat_template", "chatml").tokenizer_template_may_differ


@pytest.mark.parametrize("name", [*GENERIC, "chatml"])
def test_template_conformance(name: str, plugins: Any, tiny_tokenizer: Any) -> None:
    check_chat_template(plugins.get("chat_template", name), tiny_tokenizer, name)


def test_chatml_matches_a_chatml_tokenizer(plugins: Any, tiny_tokenizer: Any) -> None:
    from ft_core.config.schema import TemplateSection
    from ft_core.templates import resolve_template

    resolved = resolve_template(plugins, TemplateSection(name="chatml"), tiny_tokenizer, None)
    assert resolved.distribution == "ft-core-templates-generic"


def test_registration_is_import_light() -> None:
    check_import_light("ft_core_templates_generic")
