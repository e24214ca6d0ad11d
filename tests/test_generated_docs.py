"""The generated reference pages (chat templates, supported models) are current and cover every registration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ft_core.bootstrap import load_plugins
from ft_core.engine.reference import MODELS_FILE, TEMPLATES_FILE, generated_docs

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.mark.parametrize("name", [TEMPLATES_FILE, MODELS_FILE])
def test_committed_page_is_what_the_registry_generates(plugins, name: str) -> None:
    assert (DOCS / name).read_text(encoding="utf-8") == generated_docs(plugins)[name], (
        f"docs/{name} is out of date: run `ft-core docs --output docs`"
    )


def test_every_template_and_family_is_in_the_pages(plugins) -> None:
    pages = generated_docs(plugins)
    assert plugins.names("chat_template") and plugins.names("model_family")
    for name in plugins.names("chat_template"):
        assert f"\n## {name}\n" in pages[TEMPLATES_FILE]
    for name in plugins.names("model_family"):
        assert f"\n| {name} | " in pages[MODELS_FILE]


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    from ft_core.cli import main

    assert main(["docs", "--output", str(tmp_path)]) == 0
    assert main(["docs", "--output", str(tmp_path), "--check"]) == 0
    (tmp_path / TEMPLATES_FILE).write_text("stale\n")
    assert main(["docs", "--output", str(tmp_path), "--check"]) == 1
