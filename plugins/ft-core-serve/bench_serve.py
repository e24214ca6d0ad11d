"""Throughput and latency of ``ft-core serve`` under concurrent load, batched against one-at-a-time.

Loads a model once (default: the embedded SmolLM2-135M-Instruct on the ``hf`` engine), then for each
``--max-batch-size`` value starts a live server (uvicorn on a free localhost port, the app ``ft-core serve``
builds), sends one warm-up request, then ``--requests`` chat completions at once (greedy, ``--max-tokens`` each,
different questions) and measures each request's latency (sent to whole reply received) and the wall time of
all of them. Prints a table and writes the figures as JSON (``--json``). A batch size of 1 serves the requests
one at a time.

    .venv/bin/python plugins/ft-core-serve/bench_serve.py                      # 50 requests, batch 1 vs 8 vs 32
    .venv/bin/python plugins/ft-core-serve/bench_serve.py --batch-sizes 1,16 --max-tokens 16 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TOPICS = ["France", "Italy", "Spain", "Germany", "Japan", "Canada", "Brazil", "Egypt", "India", "Kenya"]


@contextmanager
def live_server(served: Any, options: Any) -> Iterator[tuple[str, Any]]:
    """``served`` on uvicorn at a free localhost port: ``(base_url, app)``."""
    import uvicorn

    from ft_core_serve.app import create_app
    from ft_core_serve.command import bind_socket

    app = create_app(served, options)
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", app
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


async def load(base_url: str, model: str, requests: int, max_tokens: int) -> dict[str, Any]:
    """One warm-up request, then ``requests`` at once; latencies and counts."""
    import httpx

    def body(index: int) -> dict[str, Any]:
        question = f"Tell me one fact about {TOPICS[index % len(TOPICS)]}. ({index})"
        return {
            "model": model,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": max_tokens,
            "temperature": 0,
        }

    async with httpx.AsyncClient(
        base_url=base_url, timeout=3600, limits=httpx.Limits(max_connections=None)
    ) as http:
        (await http.post("/chat/completions", json=body(-1))).raise_for_status()

        async def one(index: int) -> tuple[float, int]:
            started = time.perf_counter()
            response = await http.post("/chat/completions", json=body(index))
            response.raise_for_status()
            return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - started
    latencies = sorted(latency for latency, _ in results)
    tokens = sum(count for _, count in results)
    return {
        "requests": requests,
        "wall_s": round(wall, 2),
        "requests_per_s": round(requests / wall, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(latencies[max(0, int(0.95 * len(latencies) + 0.5) - 1)], 2),
        "latency_max_s": round(latencies[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="run folder or model (default: embedded)"
    )
    parser.add_argument("--requests", type=int, default=50, help="concurrent requests (50)")
    parser.add_argument("--max-tokens", type=int, default=32, help="completion tokens per request (32)")
    parser.add_argument("--batch-sizes", default="1,8,32", help="server --max-batch-size values (1,8,32)")
    parser.add_argument("--window-ms", type=float, default=10.0, help="server --batch-window-ms (10)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's choice, one per core); 1 gives steadier figures on a machine that "
        "other jobs share, where a multi-threaded op waits for its descheduled threads",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from ft_core.bootstrap import engine_services, load_plugins
    from ft_core_serve.app import ServedModel, ServerOptions

    plugins = load_plugins()
    target = engine_services(plugins).chat_target(args.model)
    engine = plugins.get("inference_engine", "hf")
    served = ServedModel(
        args.model, engine.load(target, engine.options_schema()), stop_words=tuple(target.stop_words)
    )
    rows = []
    for size in (int(s) for s in args.batch_sizes.split(",")):
        options = ServerOptions(
            max_batch_size=size, batch_window_s=args.window_ms / 1000, max_tokens=args.max_tokens
        )
        with live_server(served, options) as (base_url, app):
            figures = asyncio.run(load(base_url, args.model, args.requests, args.max_tokens))
            batches = app.state.batcher.batch_sizes[1:]  # the warm-up request ran alone
        rows.append({"max_batch_size": size, "batches": batches, **figures})
        print(f"max_batch_size={size}: {figures} batches={batches}", flush=True)
    machine = f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    print(
        f"\n{args.requests} concurrent requests, {args.max_tokens} max tokens each, greedy, {args.model}; {machine}"
    )
    print(
        "| max batch size | wall (s) | requests/s | completion tokens/s | p50 latency (s) | p95 latency (s) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['max_batch_size']} | {row['wall_s']} | {row['requests_per_s']} | {row['tokens_per_s']} | "
            f"{row['latency_p50_s']} | {row['latency_p95_s']} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"model": args.model, "machine": machine, "rows": rows}, out, indent=2)


if __name__ == "__main__":
    main()
