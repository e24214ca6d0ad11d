"""Parallel test runs (pytest-xdist) with the ``ft_core.testing`` plugin: no worker oversubscribes the cores.

Under ``pytest -n N`` every worker would otherwise run torch with one OpenMP thread per core, N times the cores in
all, and OpenMP threads that spin while they wait for each other then take the cores from the threads doing the
work: the many small operations of tiny models crawl (a 6-step tiny run: 2 s with one thread, 20 s with two on a
busy 2-core machine), and two 2-thread runs of the real model at once train 7 times slower than with one thread
each. So, in each worker:

- torch in the worker itself uses ``cores // N`` threads (at least one);
- the processes its tests start (``ft-core`` runs of the end-to-end tests, torchrun workers) may use every core,
  with ``OMP_WAIT_POLICY=PASSIVE``: a waiting thread sleeps instead of spinning, so such a process speeds up when
  the other workers leave cores idle and costs nothing when they do not.

Variables the caller set (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OMP_WAIT_POLICY``) are kept, and an
``OMP_NUM_THREADS`` of the caller's also decides the worker's own torch threads. Without xdist nothing changes.
"""

from __future__ import annotations

import os

import pytest


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_threads() -> int | None:
    """torch threads of this process when it is a pytest-xdist worker (``cores // workers``, at least 1), else
    ``None``."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not os.environ.get("PYTEST_XDIST_WORKER") or not workers:
        return None
    return max(1, _cores() // max(1, int(workers)))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Set this xdist worker's threads, and those of the processes its tests start, before any test runs."""
    threads = worker_threads()
    if threads is None:
        return
    if "OMP_NUM_THREADS" in os.environ:
        threads = int(os.environ["OMP_NUM_THREADS"])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(_cores()))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch  # every worker imports it for its first model; the thread count must be set in this process

    torch.set_num_threads(threads)
