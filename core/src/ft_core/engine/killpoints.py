"""Named moments where the crash tests (``tests/test_kill_resume.py``) kill a run: ``FT_CORE_TEST_KILL_AT`` set to
``NAME`` (the first time the process reaches it), ``NAME:N`` (the N-th time) or ``NAME:N@RANK`` (only in the process
of that ``RANK``, under torchrun) makes the process send itself SIGKILL there. Unset — always, outside those tests —
:func:`kill_point` does nothing but read the environment."""

from __future__ import annotations

import os
import signal
from collections import Counter

KILL_ENV = "FT_CORE_TEST_KILL_AT"

_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """SIGKILL this process when ``FT_CORE_TEST_KILL_AT`` names this moment (see the module docstring)."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    point, _, rank = wanted.partition("@")
    head, _, count = point.rpartition(":")
    if count.isdigit():
        point = head
    else:
        count = "1"
    if point != name or (rank and os.environ.get("RANK", "0") != rank):
        return
    _reached[name] += 1
    if _reached[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
