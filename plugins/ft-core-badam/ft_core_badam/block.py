"""badam's ``BlockOptimizer`` with the switch on schedule: every block (the first included) trains for exactly
``switch_every`` optimizer steps (badam 1.4 switches away from the first block after one step).

Imported when the optimizer is built (torch and badam are loaded here, never at registration)."""

from __future__ import annotations

import re
from typing import Any

from badam import BlockOptimizer


def count_blocks(names: list[str]) -> int:
    """How many blocks badam finds among parameter ``names`` (its rule: one per ``layers.N.`` prefix)."""
    return len({match.group(0) for name in names if (match := re.search(r".*layers.[^.]*\.", name))})


class ScheduledBlockOptimizer(BlockOptimizer):  # type: ignore[misc]  # badam ships no type information
    """Switches to the next block after optimizer steps ``switch_every``, ``2 * switch_every``, ..."""

    def step(self, *args: Any, **kwargs: Any) -> None:
        if self.ds_zero3_enabled:
            self.step_ds_zero3(*args, **kwargs)
        else:
            self.step_single_gpu(*args, **kwargs)
        if self.global_step % self.switch_block_every == 0:
            self.switch_trainable_params(verbose=self.verbose)

    @property
    def active_block(self) -> list[str]:
        """Name prefixes of the parameters that train now."""
        return list(self.active_param_prefixs)
