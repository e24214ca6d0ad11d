"""Load test of ``ft-core serve``: N concurrent clients for D seconds; no request may fail, and the server's memory
must stay bounded.

Starts ``ft-core serve MODEL --port 0`` in a subprocess, waits until it listens, then runs ``--clients`` client loops
(each sends one chat completion, waits for the reply, sends the next) for ``--duration`` seconds, sampling the
server's resident memory (RSS, with its child processes) every 0.5 s. Prints requests, failures, throughput
(requests/s, completion tokens/s), latency percentiles and the RSS after start-up, at the end and at its peak, and
exits non-zero when a request failed. Not a CI test::

    .venv/bin/python tools/bench/serve_load.py                      # 200 clients, 60 s, embedded SmolLM2
    .venv/bin/python tools/bench/serve_load.py --model tiny --clients 50 --duration 10
    .venv/bin/python tools/bench/serve_load.py --json load.json     # also write the figures as JSON
    .venv/bin/python tools/bench/serve_load.py --threads 1          # one torch thread (a box other jobs share)

The clients run on the same machine as the server: on a small box they share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

SERVING = re.compile(r"serving .* at (http://\S+)/v1")
PROMPTS = ("Say hello.", "What is 2 + 2?", "Name a colour.", "Give me one word that rhymes with cat.")


def _model(reference: str, scratch: Path) -> str:
    """``tiny``: a tiny random-init model built here (fast, meaningless replies); else the reference as given."""
    if reference != "tiny":
        return reference
    from ft_core.testing import save_tiny_model_dir

    return save_tiny_model_dir(str(scratch / "tiny-model"))


def start_server(model: str, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``ft-core serve`` on a free port; its process and base URL once it listens."""
    command = [
        sys.executable,
        "-m",
        "ft_core.cli",
        "serve",
        model,
        "--port",
        "0",
        "--model-name",
        "served",
        "--max-tokens",
        str(args.max_tokens),
        "--max-batch-size",
        str(args.max_batch_size),
        "--max-queue",
        str(max(256, args.clients + 16)),
    ]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    handle = log.open("wb")
    server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        found = SERVING.search(log.read_text(errors="replace"))
        if found:
            return server, found.group(1)
        if server.poll() is not None:
            break
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server did not start; its output:\n{log.read_text(errors='replace')[-4000:]}")


class MemorySampler(threading.Thread):
    """The server's RSS (MiB, children included) every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def rss(self) -> float:
        processes = [self.process, *self.process.children(recursive=True)]
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total / 2**20

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.rss()))
            self.stop.wait(self.interval)


async def client(
    http: httpx.AsyncClient, index: int, until: float, args: argparse.Namespace, results: list[dict[str, Any]]
) -> None:
    """One client: a request, its reply, the next request, until ``until``."""
    turn = 0
    while time.monotonic() < until:
        body = {
            "model": "served",
            "messages": [{"role": "user", "content": PROMPTS[(index + turn) % len(PROMPTS)]}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
        }
        started = time.monotonic()
        record: dict[str, Any] = {"client": index}
        try:
            reply = await http.post("/v1/chat/completions", json=body)
            record["status"] = reply.status_code
            if reply.status_code == 200:
                record["tokens"] = reply.json()["usage"]["completion_tokens"]
            else:
                record["error"] = reply.text[:300]
        except httpx.HTTPError as exc:
            record["status"], record["error"] = None, f"{type(exc).__name__}: {exc}"
        record["latency"] = time.monotonic() - started
        results.append(record)
        turn += 1


async def fire(base_url: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], float]:
    """Run every client for ``args.duration`` seconds; the records and the wall time until the last reply."""
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    timeout = httpx.Timeout(args.request_timeout)
    results: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as http:
        started = time.monotonic()
        until = started + args.duration
        await asyncio.gather(*(client(http, i, until, args, results) for i in range(args.clients)))
        return results, time.monotonic() - started


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, in seconds rounded to ms; ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 3)


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time (user + system) of ``process`` and its children so far."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _quarters(values: list[float]) -> list[list[float]]:
    size = max(1, -(-len(values) // 4))
    return [values[i : i + size] for i in range(0, len(values), size)]


def summary(
    results: list[dict[str, Any]], wall: float, memory: MemorySampler, loaded: float, args: argparse.Namespace
) -> dict[str, Any]:
    ok = [r for r in results if r["status"] == 200]
    failed = [r for r in results if r["status"] != 200]
    latencies = [r["latency"] for r in ok]
    rss = [value for _, value in memory.samples]
    return {
        "model": args.model,
        "clients": args.clients,
        "duration_s": args.duration,
        "max_tokens": args.max_tokens,
        "max_batch_size": args.max_batch_size,
        "threads": args.threads or "torch default",
        "cpu_cores": os.cpu_count(),
        "requests": len(results),
        "failed": len(failed),
        "failures": [f"{r['status']}: {r.get('error', '')}" for r in failed[:5]],
        "clients_served": len({r["client"] for r in ok}),
        "wall_s": round(wall, 1),
        "requests_per_s": round(len(ok) / wall, 2),
        "completion_tokens_per_s": round(sum(r.get("tokens", 0) for r in ok) / wall, 1),
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": percentile(latencies, 100),
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        },
        "rss_mib": {
            "after_load": round(loaded, 1),
            "peak": round(max(rss, default=loaded), 1),
            "end": round(rss[-1] if rss else loaded, 1),
            # the peak of each quarter of the run: bounded memory levels off instead of growing quarter by quarter
            "peak_by_quarter": [round(max(q, default=loaded), 1) for q in _quarters(rss)],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="what to serve; `tiny`: a tiny model"
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per reply (default 16)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="the server's --max-batch-size")
    parser.add_argument(
        "--threads",
        type=int,
        help="the server's torch threads (OMP_NUM_THREADS; 1 on a box other jobs share)",
    )
    parser.add_argument("--request-timeout", type=float, default=300.0, help="client timeout per request (s)")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as scratch:
        model = _model(args.model, Path(scratch))
        server, base_url = start_server(model, args, Path(scratch) / "server.log")
        memory = MemorySampler(server.pid)
        try:
            loaded = memory.rss()
            memory.start()
            cpu_before = _cpu_seconds(memory.process), time.process_time()
            results, wall = asyncio.run(fire(base_url, args))
            cpu = _cpu_seconds(memory.process) - cpu_before[0], time.process_time() - cpu_before[1]
        finally:
            memory.stop.set()
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    figures = summary(results, wall, memory, loaded, args)
    # where the cores went: the server's CPU time and the clients' (this process), over the same wall time
    figures["cpu_s"] = {"server": round(cpu[0], 1), "clients": round(cpu[1], 1)}
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if figures["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
