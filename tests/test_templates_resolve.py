"""Resolving the run's chat template and checking it against the tokenizer's own (ft_core.engine.templates.resolve)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import ft_core_llama
import ft_core_qwen
import ft_core_templates_generic
from ft_core.api.config import TemplateSection
from ft_core.api.context import ResolvedTemplate
from ft_core.api.errors import ComponentNotFoundError, FtCoreError, TemplateMismatchError
from ft_core.engine.templates.golden import compare_templates
from ft_core.engine.templates.resolve import (
    apply_template_to_tokenizer,
    check_template,
    derive_template_from_tokenizer,
    resolve_template,
)
from ft_core.testing.tiny import CHATML_JINJA, tiny_tokenizer
from ft_core_llama.templates import LLAMA2, LLAMA3


@pytest.fixture
def plugins(make_plugins: Callable[..., Any]) -> Any:
    return make_plugins(ft_core_llama, ft_core_qwen, ft_core_templates_generic)


def resolved(jinja: str, **overrides: Any) -> ResolvedTemplate:
    fields: dict[str, Any] = dict(
        name="mine", jinja=jinja, stop_words=(), distribution="d", version="1", derived_from_tokenizer=False
    )
    return ResolvedTemplate(**{**fields, **overrides})


def test_named_template_equal_to_the_tokenizers_passes(plugins: Any, tiny_tokenizer: Any) -> None:
    # chatml's Jinja text differs from the tiny tokenizer's, but every golden rendering is the same.
    assert ft_core_templates_generic.CHATML != CHATML_JINJA
    result = resolve_template(plugins, TemplateSection(name="chatml"), tiny_tokenizer, None)
    assert result.name == "chatml" and result.distribution == "plugin-under-test"
    assert result.stop_words == ("<|im_end|>",) and not result.derived_from_tokenizer
    assert compare_templates(tiny_tokenizer, CHATML_JINJA, result.jinja) is None


def test_different_template_fails_with_a_readable_diff(plugins: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(TemplateMismatchError) as info:
        resolve_template(plugins, TemplateSection(name="llama3"), tiny_tokenizer, None)
    message = str(info.value)
    assert "chat template 'llama3' (plugin-under-test test) does not render like" in message
    assert "golden conversation 'golden:system-two-turns' (whole conversation)" in message
    assert "token ids differ first at position 0" in message
    assert "--- tokenizer's own template\n+++ template 'llama3'" in message
    assert "-<|im_start|>system⏎" in message and "+<s><|start_header_id|>system<|end_header_id|>⏎" in message
    assert "`template: auto`" in message and "`template.check: warn`" in message


def test_default_system_prompt_difference_is_caught(plugins: Any, tiny_tokenizer: Any) -> None:
    # qwen equals ChatML except for the default system prompt: caught by the conversation without system.
    with pytest.raises(TemplateMismatchError, match=r"'golden:no-system'.*\n.*\n.*\n(.|\n)*\+You are Qwen"):
        resolve_template(plugins, TemplateSection(name="qwen"), tiny_tokenizer, None)


def test_warn_prints_and_off_skips(
    plugins: Any, tiny_tokenizer: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result = resolve_template(plugins, TemplateSection(name="llama3", check="warn"), tiny_tokenizer, None)
    assert result.name == "llama3"
    assert "ft-core: warning: chat template 'llama3'" in capsys.readouterr().err
    resolve_template(plugins, TemplateSection(name="llama3", check="off"), tiny_tokenizer, None)
    assert capsys.readouterr().err == ""
    with pytest.raises(FtCoreError, match=r"template\.check must be one of strict, warn, off"):
        check_template(tiny_tokenizer, result, "loud")


def test_generic_templates_are_not_compared(plugins: Any, tiny_tokenizer: Any) -> None:
    for name in ("default", "alpaca", "vicuna", "empty"):
        result = resolve_template(plugins, TemplateSection(name=name), tiny_tokenizer, None)
        assert result.tokenizer_template_may_differ


def test_nothing_to_compare_without_a_tokenizer_template(plugins: Any) -> None:
    bare = tiny_tokenizer(chat_template=None)
    assert resolve_template(plugins, TemplateSection(name="llama3"), bare, None).jinja == LLAMA3


def test_auto_uses_the_tokenizers_template(plugins: Any, tiny_tokenizer: Any) -> None:
    result = resolve_template(plugins, TemplateSection(name="auto"), tiny_tokenizer, None)
    assert result.jinja == CHATML_JINJA and result.derived_from_tokenizer
    assert result.distribution == "tokenizer" and result.version.startswith("sha256:")
    assert result.stop_words == ()  # the turn ends with EOS already
    assert result.manifest() == {
        "name": "auto",
        "stop_words": [],
        "distribution": "tokenizer",
        "version": result.version,
        "derived_from_tokenizer": True,
        "tokenizer_template_may_differ": False,
        "prefix_stable": False,  # an unknown template is encoded turn by turn where it rewrites history
        "stop_at_next_turn": False,
        "template_kwargs": {},
        "supports_tools": False,
    }


def test_auto_without_a_tokenizer_template_suggests_a_name(plugins: Any) -> None:
    bare = tiny_tokenizer(chat_template=None)
    family = plugins.get("model_family", "llama")
    with pytest.raises(FtCoreError) as info:
        resolve_template(plugins, TemplateSection(name="auto"), bare, family)
    message = str(info.value)
    assert "has none" in message and "`template: llama3` (this model family's default)" in message
    assert "llama2 (plugin-under-test)" in message and "qwen (plugin-under-test)" in message


def test_unknown_name_lists_what_is_available(plugins: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(
        ComponentNotFoundError, match=r"unknown chat template 'llama4'\. Did you mean 'llama3'\?"
    ):
        resolve_template(plugins, TemplateSection(name="llama4"), tiny_tokenizer, None)


def test_derived_template_finds_the_end_of_turn_stop_word() -> None:
    llama_like = tiny_tokenizer(
        chat_template=LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    derived = derive_template_from_tokenizer(llama_like)
    assert derived.jinja == LLAMA3 and derived.stop_words == ("<|eot_id|>",)
    with pytest.raises(FtCoreError, match="has no chat template"):
        derive_template_from_tokenizer(tiny_tokenizer(chat_template=None))


def test_comparison_skips_what_neither_template_renders(tiny_tokenizer: Any) -> None:
    # llama2 cannot render the tool conversation: skipped when comparing it with itself...
    assert compare_templates(tiny_tokenizer, LLAMA2, LLAMA2 + "\n") is None
    # ...but a template that renders what the other rejects differs.
    strict_chatml = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        + CHATML_JINJA
    )
    diff = compare_templates(tiny_tokenizer, strict_chatml, CHATML_JINJA)
    assert diff is not None and diff.conversation == "golden:system-two-turns"
    assert diff.expected_text.startswith("<cannot render:") and "no system role" in diff.expected_text


def test_apply_template_sets_template_and_pad(tmp_path: Any) -> None:
    from transformers import AutoTokenizer

    tokenizer = tiny_tokenizer(chat_template=None, pad_token=None)
    apply_template_to_tokenizer(tokenizer, resolved(LLAMA3))
    assert tokenizer.chat_template == LLAMA3
    assert tokenizer.pad_token == tokenizer.eos_token
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).chat_template == LLAMA3


def test_auto_names_the_registered_template_the_tokenizer_carries(plugins: Any) -> None:
    llama_like = tiny_tokenizer(
        chat_template=LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    result = resolve_template(plugins, TemplateSection(name="auto"), llama_like, None)
    assert result.name == "llama3" and result.distribution == "plugin-under-test"
    assert result.jinja == LLAMA3 and result.derived_from_tokenizer
    assert result.stop_words == ("<|eot_id|>",) and result.prefix_stable


def test_a_wrong_named_template_points_at_the_registered_one_that_matches(plugins: Any) -> None:
    llama_like = tiny_tokenizer(
        chat_template=LLAMA3, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>"
    )
    with pytest.raises(TemplateMismatchError, match=r"use `template: llama3` \(the registered template"):
        resolve_template(plugins, TemplateSection(name="qwen"), llama_like, None)


def test_config_kwargs_override_the_templates_defaults(plugins: Any, tiny_tokenizer: Any) -> None:
    section = TemplateSection(name="qwen", check="off", kwargs={"enable_thinking": False})
    result = resolve_template(plugins, section, tiny_tokenizer, None)
    assert result.template_kwargs == {"enable_thinking": False}
    assert result.manifest()["template_kwargs"] == {"enable_thinking": False}
