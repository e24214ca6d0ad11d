"""``ft-core plugin new KIND NAME [--output DIR]``: write a new plugin distribution for any component kind.

The distribution has a pyproject with the ``ft_core`` entry point, one package with a working minimal component of
the kind (and its options dataclass), tests written with :mod:`ft_core.testing` (the kind's conformance check where
the kit has one), a README and a CI script. It installs with ``pip install -e DIR`` and its tests pass as generated.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.errors import FtCoreError, did_you_mean
from ft_core.api.kinds import KINDS, KINDS_BY_KEY

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _kind_key(text: str) -> str:
    """``chat_template``, ``chat-template`` or a config section name (``adapter``, ``loggers``) -> the kind key."""
    key = text.replace("-", "_")
    if key in KINDS_BY_KEY:
        return key
    by_section = {k.section: k.key for k in KINDS if k.section}
    if key in by_section:
        return by_section[key]
    raise FtCoreError(
        f"unknown component kind {text!r}.{did_you_mean(key, KINDS_BY_KEY)} Kinds: {', '.join(KINDS_BY_KEY)}"
    )


def plugin_files(kind: str, name: str, distribution: str | None = None) -> dict[str, str]:
    """The files of a new plugin distribution (relative path -> text) with one ``kind`` component called ``name``."""
    from ft_core import __version__
    from ft_core.commands import plugin_scaffold as scaffold

    key = _kind_key(kind)
    if not _NAME.match(name):
        raise FtCoreError(f"plugin name {name!r}: lower-case letters, digits and _, starting with a letter")
    spec = KINDS_BY_KEY[key]
    dist = distribution or f"ft-core-{name.replace('_', '-')}"
    package = re.sub(r"[^a-z0-9_]", "_", dist.lower().replace("-", "_"))
    module, tests, usage = scaffold.KIND_FILES[key]
    values = {
        "__DIST__": dist,
        "__PKG__": package,
        "__NAME__": name,
        "__CLASS__": "".join(part.capitalize() for part in name.split("_")),
        "__KIND__": key,
        "__HOOK__": spec.hook,
        "__SINGULAR__": spec.singular,
        "__FTVERSION__": ".".join(__version__.split(".")[:2]),
        "__USAGE__": usage,
    }

    def fill(text: str) -> str:
        for marker, value in values.items():
            text = text.replace(marker, value)
        return text

    # __USAGE__ itself holds markers: substitute it first
    values["__USAGE__"] = fill(usage)
    return {
        "pyproject.toml": fill(scaffold.PYPROJECT),
        "README.md": fill(scaffold.README),
        "ci.sh": fill(scaffold.CI),
        ".gitignore": scaffold.GITIGNORE,
        f"{package}/__init__.py": fill(scaffold.HEADER + module),
        f"tests/test_{package}.py": fill(scaffold.TEST_HEADER + tests),
    }


class PluginCommand(CliCommand):
    help: ClassVar[str] = "plugin authoring: `plugin new KIND NAME` writes a new plugin distribution"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{new}")
        new = actions.add_parser(
            "new",
            help="write a plugin distribution with one working component, its tests, a README and a CI script",
        )
        new.add_argument("kind", help=f"component kind: {', '.join(KINDS_BY_KEY)}")
        new.add_argument("name", help="the name it registers (lower_case), e.g. my_template")
        new.add_argument(
            "--output", "-o", metavar="DIR", help="where to write it (default: ./<distribution>)"
        )
        new.add_argument("--dist", help="distribution name (default: ft-core-<name>)")
        new.add_argument("--force", action="store_true", help="write into an existing non-empty folder")

    def run(self, args: argparse.Namespace) -> int:
        files = plugin_files(args.kind, args.name, args.dist)
        dist = files["pyproject.toml"].split('name = "', 1)[1].split('"', 1)[0]
        root = Path(args.output) if args.output else Path(dist)
        if root.exists() and any(root.iterdir()) and not args.force:
            raise FtCoreError(f"{root} exists and is not empty (--force writes into it)")
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if relative.endswith(".sh"):
                path.chmod(0o755)
        print(f"wrote {dist} ({_kind_key(args.kind)} `{args.name}`) in {root}")
        print(f"next: pip install -e {root} && ft-core plugins && (cd {root} && python -m pytest -q)")
        return 0
