"""End to end in a browser: start ``ft-core board`` on a free port, fill the forms in headless Chromium (Debian's
package, driven by Playwright through its executable path), train a 2-step LoRA job on the embedded model to
completion, then chat with it. ``tools/board_screenshots.py`` runs the same :func:`drive` and keeps screenshots.

Needs ``apt-get install -y chromium`` (``/usr/bin/chromium``, or ``FT_CORE_CHROMIUM``) and ``pip install playwright``
(the Python package only; no ``playwright install``); skipped with the reason when either is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("FT_CORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_board(cwd: Path, port: int) -> subprocess.Popen[bytes]:
    """``ft-core board`` in ``cwd`` (runs in ``cwd/runs``), once it answers on ``port``."""
    log = (cwd / "board.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "ft_core.cli", "board", "--port", str(port), "--runs-dir", "runs"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the board exited: {(cwd / 'board.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the board did not answer within 180 s")


def stop_board(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def _fill(page: Any, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def _wait_value(page: Any, elem_id: str, timeout: float) -> None:
    """Wait until the textbox ``elem_id`` holds text (a textarea's value is not text a locator can match)."""
    page.wait_for_function(
        "id => { const box = document.querySelector(`#${id} textarea`); return !!box && box.value.trim() !== ''; }",
        arg=elem_id,
        timeout=timeout,
    )


def _shot(page: Any, shots: Path | None, name: str) -> None:
    if shots is not None:
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / f"board-{name}.png"), full_page=True)


def drive(page: Any, url: str, run_name: str = "e2e", shots: Path | None = None) -> str:
    """Fill the forms, start a 2-step LoRA run on the embedded model, follow it to completion, chat with it; return
    the model's reply. With ``shots``, also show a template and export the run, saving a screenshot of each tab there."""
    page.goto(url)
    page.wait_for_selector("#board-run-name")
    _fill(page, "board-run-name", run_name)
    _shot(page, shots, "model")
    page.get_by_role("tab", name="Data").click()
    _fill(page, "board-cutoff", "96")
    _fill(page, "board-max-samples", "8")
    page.locator("#board-preview-note").get_by_text("first").wait_for(timeout=60_000)
    _shot(page, shots, "data")
    if (
        shots is not None
    ):  # show a registered template's rendering, then go back to the tokenizer's own (auto)
        page.get_by_role("tab", name="Template").click()
        page.locator("#board-template input").fill("chatml")
        page.get_by_role("option", name="chatml", exact=True).click()
        page.locator("#board-rendering").get_by_text("Paris", exact=False).first.wait_for(timeout=60_000)
        _shot(page, shots, "template")
        page.locator("#board-template input").fill("auto")
        page.get_by_role("option", name="auto", exact=True).click()
    page.get_by_role("tab", name="Train").click()
    _fill(page, "board-max-steps", "2")
    _fill(page, "board-logging-steps", "1")
    _fill(page, "board-batch", "2")
    page.locator("#board-yaml").get_by_text("max_steps").wait_for(timeout=30_000)
    page.locator("#board-check").click()
    page.locator("#board-check-out").get_by_text("valid").wait_for(timeout=180_000)
    _shot(page, shots, "train")
    page.locator("#board-start").click()
    status = page.locator("#board-status")
    status.get_by_text("running").or_(status.get_by_text("completed")).first.wait_for(timeout=300_000)
    ended = (
        status.get_by_text("completed").or_(status.get_by_text("exited")).or_(status.get_by_text("failed"))
    )
    ended.first.wait_for(timeout=900_000)
    assert "completed" in status.inner_text(), status.inner_text()
    page.wait_for_timeout(2000)
    _shot(page, shots, "run")
    page.get_by_role("tab", name="Chat").click()
    _fill(page, "board-message", "Who are you?")
    page.locator("#board-send").click()
    bot = page.locator("#board-chatbot .bot").last
    reply, stable_since = "", time.monotonic()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        text = bot.inner_text(timeout=600_000).strip() if bot.count() else ""
        if text != reply:
            reply, stable_since = text, time.monotonic()
        elif reply and reply != "…" and time.monotonic() - stable_since > 4:
            break
        page.wait_for_timeout(500)
    _shot(page, shots, "chat")
    if shots is None:
        return reply
    page.get_by_role("tab", name="Export").click()
    page.locator("#board-export").click()
    _wait_value(page, "board-export-out", 600_000)
    _shot(page, shots, "export")
    return reply


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.mark.e2e
def test_board_trains_and_chats_in_chromium(tmp_path: Path) -> None:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set FT_CORE_CHROMIUM)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install playwright"
    )
    port = free_port()
    board = start_board(tmp_path, port)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            reply = drive(page, f"http://127.0.0.1:{port}/")
            browser.close()
    finally:
        stop_board(board)
    run = tmp_path / "runs" / "e2e"
    assert (tmp_path / "runs" / "e2e.yaml").is_file() and (run / "model").is_dir()
    assert '"completed"' in (run / "manifest.json").read_text()
    assert reply and reply != "…" and not reply.startswith("error:"), reply
