"""``ft-core plugins``: installed plugin distributions and what each registered."""

from __future__ import annotations

import argparse
import json
from typing import Any, ClassVar

from ft_core.api.components import CliCommand
from ft_core.api.kinds import KINDS


class PluginsCommand(CliCommand):
    help: ClassVar[str] = "list plugin distributions, their status and every registered name per kind"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> int:
        plugins = args.plugins
        if args.json:
            data = {
                "plugins": [r.as_dict() for r in plugins.records],
                "components": {
                    kind.key: {
                        n: plugins.registries[kind.key][n].distribution for n in plugins.names(kind.key)
                    }
                    for kind in KINDS
                },
                "clashes": [self._clash(plugins, key) for key in sorted(plugins.clashes)],
            }
            print(json.dumps(data, indent=2))
            return self._status(plugins)
        rows = [("distribution", "version", "plugin", "status", "registered")]
        for record in plugins.records:
            registered = "; ".join(
                f"{kind}: {', '.join(self._selectable(plugins, kind, n, record.distribution) for n in names)}"
                for kind, names in record.registered.items()
            )
            rows.append((record.distribution, record.version, record.name, record.status, registered or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
        for key in sorted(plugins.clashes):
            label = "name clash" if plugins.clash_winner(key) is not None else "ambiguous name"
            print(f"\n{label}: {plugins.clash_message(key)}")
        for record in plugins.records:
            if record.error:
                print(f"\n{record.name} ({record.distribution} {record.version}) failed: {record.error}")
        print()
        for kind in KINDS:
            names = plugins.names(kind.key)
            print(f"{kind.title}: {', '.join(names) if names else '(none installed)'}")
        return self._status(plugins)

    @staticmethod
    def _selectable(plugins: Any, kind: str, name: str, distribution: str) -> str:
        """How a config selects ``distribution``'s ``name``: the plain name, or its qualified name when the plain
        name selects another distribution's registration or is ambiguous."""
        registration = plugins.registries[kind].get(name)
        if registration is not None and registration.distribution == distribution:
            return name
        return f"{distribution}:{name}" if (kind, name) in plugins.clashes else name

    @staticmethod
    def _clash(plugins: Any, key: tuple[str, str]) -> dict[str, Any]:
        winner = plugins.clash_winner(key)
        return {
            "kind": key[0],
            "name": key[1],
            "registrations": [
                {"qualified_name": r.qualified_name, "distribution": r.distribution, "version": r.version}
                for r in plugins.clashes[key]
            ],
            "selected_by_plain_name": winner.qualified_name if winner is not None else None,
            "message": plugins.clash_message(key),
        }

    @staticmethod
    def _status(plugins: Any) -> int:
        """1 when a plugin failed or a name is ambiguous (so CI notices), after listing; else 0. A first-party
        name that a third-party plugin also registers is a warning only (the plain name still selects one)."""
        broken = any(r.status == "failed" for r in plugins.records) or any(
            plugins.clash_winner(key) is None for key in plugins.clashes
        )
        return 1 if broken else 0
