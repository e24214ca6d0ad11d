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
            }
            print(json.dumps(data, indent=2))
            return self._status(plugins)
        rows = [("distribution", "version", "plugin", "status", "registered")]
        for record in plugins.records:
            registered = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in record.registered.items())
            rows.append((record.distribution, record.version, record.name, record.status, registered or "-"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
        for key in plugins.conflicts:
            print(f"\nconflict: {plugins.conflict_message(key)}")
        for record in plugins.records:
            if record.error:
                print(f"\n{record.name} ({record.distribution} {record.version}) failed: {record.error}")
        print()
        for kind in KINDS:
            names = plugins.names(kind.key)
            print(f"{kind.title}: {', '.join(names) if names else '(none installed)'}")
        return self._status(plugins)

    @staticmethod
    def _status(plugins: Any) -> int:
        """1 when a plugin failed or names conflict (so CI notices), after listing; else 0."""
        broken = any(r.status == "failed" for r in plugins.records) or bool(plugins.conflicts)
        return 1 if broken else 0
