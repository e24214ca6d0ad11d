"""``ft-core import-lf FILE.yaml [--output DIR]``: a LLaMA-Factory config as an ft-core config.

Every key of the file is accounted for: written to its ft-core place, or listed with the reason there is none (never
dropped silently), or flagged as not a LLaMA-Factory key with a did-you-mean. The table behind it is
:mod:`ft_core.engine.config.llamafactory_map`; ``docs/coming-from-llamafactory.md`` is generated from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.errors import ConfigError, FtCoreError


def installed(plugins: Any) -> dict[str, dict[str, frozenset[str] | None]]:
    """Installed component names per kind with their option names (the importer's ``available``), plus
    ``training``: the fields ft-core's training section takes."""
    from ft_core.api.config import TrainingSection

    def fields(schema: Any) -> frozenset[str] | None:
        return (
            frozenset(f.name for f in dataclasses.fields(schema))
            if dataclasses.is_dataclass(schema)
            else None
        )

    available: dict[str, dict[str, frozenset[str] | None]] = {}
    for kind, registry in plugins.registries.items():
        names: dict[str, frozenset[str] | None] = {}
        for name in plugins.names(kind):
            component = registry[name].component
            schema = getattr(component, "schema" if kind == "config_section" else "options_schema", None)
            names[name] = fields(schema) if schema is not None else None
        available[kind] = names
    available["training"] = {"training": fields(TrainingSection)}
    return available


def _yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True)


def render(translation: Any, source: str) -> str:
    """The ft-core YAML with a header saying where it came from and every LLaMA-Factory key not carried over."""
    lines = [f"# ft-core run config.yaml   (imported from LLaMA-Factory's {source} by `ft-core import-lf`)"]
    if translation.unmapped or translation.unknown:
        lines.append("# Not carried over:")
        lines += [f"#   {key}: {value!r} -- {why}" for key, value, why in translation.unmapped]
        lines += [
            f"#   {key}: not a LLaMA-Factory key" + (f" (did you mean {hint}?)" if hint else "")
            for key, hint in translation.unknown
        ]
    if translation.notes:
        lines.append("# Notes:")
        lines += [f"#   {note}" for note in translation.notes]
    return "\n".join(lines) + "\n" + _yaml(translation.config)


def report(translation: Any) -> str:
    """The human summary: counts, every key not carried over with its reason, unknown keys, notes, blockers."""
    out = [
        f"{len(translation.mapped)} keys carried over, {len(translation.unmapped)} without an ft-core counterpart, "
        f"{len(translation.unknown)} unknown"
    ]
    if translation.unmapped:
        out.append("not carried over:")
        out += [f"  {key}: {value!r} -- {why}" for key, value, why in translation.unmapped]
    if translation.unknown:
        out.append("not LLaMA-Factory keys:")
        out += [
            f"  {key}" + (f" -- did you mean {hint}?" if hint else "") for key, hint in translation.unknown
        ]
    if translation.notes:
        out.append("notes:")
        out += [f"  {note}" for note in translation.notes]
    if translation.blockers:
        out.append("will not run in this installation:")
        out += [f"  {b}" for b in translation.blockers]
    return "\n".join(out)


class ImportLfCommand(CliCommand):
    help: ClassVar[str] = (
        "translate a LLaMA-Factory YAML config into an ft-core config, listing every key without a counterpart"
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("file", help="a LLaMA-Factory training, inference or export YAML file")
        parser.add_argument(
            "--output",
            "-o",
            help="write DIR/config.yaml (default: print the config on stdout)",
            metavar="DIR",
        )
        parser.add_argument("--force", action="store_true", help="overwrite DIR/config.yaml")

    def run(self, args: argparse.Namespace) -> int:
        import yaml

        from ft_core.engine.config.llamafactory_map import translate

        path = Path(args.file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise FtCoreError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise FtCoreError(f"{path}: not YAML ({exc})") from None
        if not isinstance(data, dict):
            raise FtCoreError(f"{path}: expected a mapping of LLaMA-Factory keys")
        nested = sorted(k for k, v in data.items() if isinstance(v, dict) and k not in ("rope_scaling",))
        if nested and not any(k in data for k in ("model_name_or_path", "stage", "finetuning_type")):
            raise FtCoreError(
                f"{path}: sections ({', '.join(nested)}) at top level: this looks like an ft-core config already"
            )
        translation = translate(data, installed(args.plugins))
        text = render(translation, path.name)
        if args.output:
            target = Path(args.output) / "config.yaml"
            if target.exists() and not args.force:
                raise FtCoreError(f"{target} exists (--force overwrites it)")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            summary = sys.stdout
        else:
            print(text, end="")
            summary = sys.stderr
        print(report(translation), file=summary)
        problems = self._check(translation.config, args.plugins)
        if problems:
            print("ft-core validate (without reading data or tokenizer) would still report:", file=summary)
            print("\n".join(f"  {p}" for p in problems), file=summary)
        if args.output:
            print(f"wrote {target}; next: ft-core validate {target}", file=summary)
        return 0

    @staticmethod
    def _check(config: dict[str, Any], plugins: Any) -> list[str]:
        from ft_core.engine.config.loader import normalize
        from ft_core.engine.config.validate import validate

        try:
            validate(normalize(config), plugins)
        except ConfigError as exc:
            return list(exc.problems)
        return []
