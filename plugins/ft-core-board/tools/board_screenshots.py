"""Screenshots of each tab of ``ft-core board`` into ``docs/images/board-*.png``: the end-to-end test's browser
drive (a 2-step LoRA run on the embedded model, then a chat), in a temporary folder.

    .venv/bin/python plugins/ft-core-board/tools/board_screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("board_e2e", HERE.parent / "tests" / "test_board_e2e.py")
assert spec is not None and spec.loader is not None
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[2] / "docs" / "images").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = e2e.free_port()
        board = e2e.start_board(Path(tmp), port)
        try:
            with sync_playwright() as playwright:
                browser = e2e.launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                reply = e2e.drive(page, f"http://127.0.0.1:{port}/", run_name="nova-lora", shots=out)
                browser.close()
        finally:
            e2e.stop_board(board)
    print(f"screenshots in {out}; the model answered: {reply!r}")


if __name__ == "__main__":
    main()
