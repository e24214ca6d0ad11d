"""Regenerate the mapping tables of docs/coming-from-llamafactory.md from the importer's own table
(ft_core.engine.config.llamafactory_map); tests/test_import_lf.py checks the page is up to date."""

from __future__ import annotations

from pathlib import Path

from ft_core.engine.config.llamafactory_map import mapping_markdown

PAGE = Path(__file__).resolve().parents[1] / "docs" / "coming-from-llamafactory.md"
BEGIN, END = "<!-- generated: mapping -->\n", "<!-- end generated -->"


def main() -> None:
    text = PAGE.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    PAGE.write_text(head + BEGIN + mapping_markdown() + END + tail, encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
