"""The board without a browser: config building, path checks, validation, dataset previews, template segments, and
following / cancelling / resuming runs and chatting through fake ``ft-core`` subprocesses (no torch)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ft_core.api import FtCoreError
from ft_core_board import logic
from ft_core_board.choices import choices_from
from ft_core_board.command import check_port
from ft_core_board.logic import (
    BoardForm,
    ChatSession,
    RunManager,
    Workspace,
    build_config,
    config_yaml,
    follow,
    highlight,
    loss_points,
    parse_problems,
    preview_rows,
)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "models" / "tiny" / "config.json").write_text("{}")
    return Workspace(runs_dir=Path("runs"), data_dir=Path("data"), model_dirs=(Path("models"),))


def test_default_form_builds_the_cli_config(ws: Workspace) -> None:
    config = build_config(BoardForm(run_name="r1", max_steps=2, cutoff_len=32, max_samples=8), ws)
    assert config["model"] == {"name_or_path": "smollm2-135m-instruct"}
    assert config["data"] == {"dataset": ["identity"], "cutoff_len": 32, "max_samples": 8}
    assert config["adapter"] == {"method": "lora", "rank": 8, "alpha": 16.0}
    assert config["training"]["output_dir"] == "runs/r1" and config["training"]["max_steps"] == 2
    assert "template" not in config and "quantization" not in config and "stage" not in config
    text = config_yaml(config, ws.config_path("r1"))
    assert text.startswith("# ft-core run runs/r1.yaml\n") and yaml.safe_load(text) == config


def test_components_and_their_options(ws: Workspace) -> None:
    form = BoardForm(
        template="chatml", system="Be brief.", stage="dpo", adapter="freeze", freeze_layers=3,
        quantization="bitsandbytes", quant_bits=8, lora_targets="q_proj", overwrite_output_dir=True,
    )  # fmt: skip
    config = build_config(form, ws)
    assert config["template"] == {"name": "chatml", "system": "Be brief."}
    assert config["stage"] == {"name": "dpo"}
    assert config["adapter"] == {"method": "freeze", "trainable_layers": 3}
    assert config["quantization"] == {"method": "bitsandbytes", "bits": 8}
    assert config["training"]["overwrite_output_dir"] is True
    lora = build_config(BoardForm(lora_targets="q_proj, v_proj", lora_dropout=0.1), ws)["adapter"]
    assert lora == {
        "method": "lora",
        "rank": 8,
        "alpha": 16.0,
        "dropout": 0.1,
        "targets": ["q_proj", "v_proj"],
    }
    assert build_config(BoardForm(model="models/tiny"), ws)["model"]["name_or_path"] == "models/tiny"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("run_name", "../evil", "run name"),
        ("run_name", "a/b", "run name"),
        ("model", "models/../../etc", "'..' is not allowed"),
        ("model", "/etc", "outside the board's folders"),
        ("model", "elsewhere/model", "outside the board's folders"),
    ],
)
def test_paths_outside_the_workspace_are_refused(ws: Workspace, field: str, value: str, message: str) -> None:
    with pytest.raises(FtCoreError, match=message):
        build_config(BoardForm(**{field: value}), ws)


def test_parse_problems_of_validate_output() -> None:
    output = textwrap.dedent(
        """\
        ft-core: error: 2 problem(s) in config:
          - data.dataset: unknown dataset 'nope'; did you mean 'identity'?
          - training.learnig_rate: unknown key; did you mean 'learning_rate'?
        """
    )
    assert parse_problems(output) == [
        "data.dataset: unknown dataset 'nope'; did you mean 'identity'?",
        "training.learnig_rate: unknown key; did you mean 'learning_rate'?",
    ]
    assert parse_problems("ft-core: error: model.name_or_path: required") == ["model.name_or_path: required"]


def test_validate_reports_problems_of_a_bad_form(ws: Workspace) -> None:
    result = logic.validate(ws, BoardForm(run_name="bad", datasets=["no_such_dataset"]))
    assert not result.ok
    assert any("no_such_dataset" in problem for problem in result.problems), result.output
    assert not list(Path("runs").glob(".board-check-*")), "the check file is removed"


def test_dataset_registry_and_preview(ws: Workspace) -> None:
    columns, rows, note = preview_rows(ws, "identity", limit=3)
    assert "instruction" in columns and len(rows) == 3 and note.startswith("identity: alpaca")
    Path("data").mkdir()
    (Path("data") / "mine.jsonl").write_text(
        '{"instruction": "hi", "output": "yo"}\n\n{"instruction": "a", "output": "b"}\n'
    )
    (Path("data") / "dataset_info.json").write_text(
        json.dumps({"mine": {"file_name": "mine.jsonl"}, "evil": {"file_name": "../secret.json"}})
    )
    assert {"identity", "mine", "evil"} <= set(logic.dataset_registry(ws))
    assert preview_rows(ws, "mine")[1] == [["hi", "yo"], ["a", "b"]]
    with pytest.raises(FtCoreError, match="leaves the dataset folder"):
        preview_rows(ws, "evil")
    with pytest.raises(FtCoreError, match="unknown dataset"):
        preview_rows(ws, "nope")


def test_highlight_marks_trained_spans() -> None:
    spans = [{"start": 6, "end": 9}]
    assert highlight("Hello Bob!", spans) == [("Hello ", None), ("Bob", "trained"), ("!", None)]


def test_loss_points_keep_the_later_record_and_skip_the_summary() -> None:
    records = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.5},
        {"step": 2, "loss": 2.0},
        {"step": 2, "train_runtime": 1.0, "loss": 9.0},
    ]
    assert loss_points(records) == [(1, 3.0), (2, 2.0)]


def test_follow_reads_the_run_folder(ws: Workspace) -> None:
    run = ws.run_dir("r")
    run.mkdir(parents=True)
    assert follow(ws, "r").status == "not started"
    (run / "manifest.json").write_text(json.dumps({"status": "running"}))
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    ws.log_path("r").write_text("data: 8 samples\nstep 1/4 | loss 2\nstep 2/4 | loss 1.5\n")
    view = follow(ws, "r", None)
    assert (view.status, view.step, view.max_steps, view.progress) == ("running", 2, 4, 0.5)
    assert "loss 1.5" in view.summary() and not view.finished
    assert (
        follow(ws, "r", 1).status == "exited with code 1"
    )  # the process died, the manifest still says running
    (run / "manifest.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    view = follow(ws, "r", 1)
    assert (view.status, view.error, view.finished) == ("failed", "boom", True)


FAKE_CLI = """
import json, pathlib, sys, time
args = sys.argv[1:]
if args[0] == "run":
    import yaml
    out = pathlib.Path(yaml.safe_load(open(args[1]))["training"]["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "CANCEL").unlink(missing_ok=True)
    (out / "config.yaml").write_text(open(args[1]).read())
    start = len((out / "metrics.jsonl").read_text().splitlines()) if (out / "metrics.jsonl").exists() else 0
    (out / "manifest.json").write_text(json.dumps({"status": "running"}))
    for step in range(start + 1, 5):
        time.sleep(0.3)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\\n")
        print(f"step {step}/4 | loss {1.0 / step}", flush=True)
        if (out / "CANCEL").exists():
            (out / "manifest.json").write_text(json.dumps({"status": "cancelled"}))
            print("ft-core: run cancelled", file=sys.stderr)
            sys.exit(130)
    (out / "manifest.json").write_text(json.dumps({"status": "completed"}))
elif args[0] == "cancel":
    out = pathlib.Path(args[1])
    if json.loads((out / "manifest.json").read_text())["status"] != "running":
        print("ft-core: error: not running", file=sys.stderr)
        sys.exit(2)
    (out / "CANCEL").write_text("x")
    print(f"asked {out} to stop")
elif args[0] == "chat":
    print("loading", file=sys.stderr)
    while True:
        try:
            line = input("User: ")
        except EOFError:
            break
        if line == "exit":
            break
        if line == "clear":
            continue
        print("Assistant: ", end="", flush=True)
        for word in ("I am", " Nova,", " you said:", " " + line):
            print(word, end="", flush=True)
            time.sleep(0.05)
        print()
"""


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    script = tmp_path / "fake_cli.py"
    script.write_text(FAKE_CLI)
    command = [sys.executable, str(script)]
    monkeypatch.setattr(logic, "cli_command", lambda: command)
    return command


def _wait(ws: Workspace, manager: RunManager, name: str, timeout: float = 30) -> logic.RunView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = follow(ws, name, manager.returncode(name))
        if view.finished:
            return view
        time.sleep(0.1)
    raise AssertionError(f"{name} did not finish: {view}")


def test_start_follow_cancel_resume(ws: Workspace, fake_cli: list[str]) -> None:
    manager = RunManager(ws)
    text = config_yaml(build_config(BoardForm(run_name="r"), ws))
    assert "started r" in manager.start("r", text)
    assert ws.config_path("r").read_text() == text
    with pytest.raises(FtCoreError, match="already running"):
        manager.start("r", text)
    deadline = time.monotonic() + 20
    while not (ws.run_dir("r") / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "asked" in manager.cancel("r")
    view = _wait(ws, manager, "r")
    assert view.status == "cancelled" and view.step is not None and view.step < 4
    with pytest.raises(FtCoreError, match="not running"):
        manager.cancel("r")
    assert "resumed r" in manager.resume("r")
    view = _wait(ws, manager, "r")
    assert view.status == "completed" and view.losses[-1] == (4, 0.25) and view.progress == 1.0
    assert "ft-core run runs/r/config.yaml" in ws.log_path("r").read_text()  # resumed from the saved config
    with pytest.raises(FtCoreError, match="has completed"):
        manager.resume("r")
    assert ws.list_runs() == ["r"]


def test_chat_session_streams_replies(fake_cli: list[str]) -> None:
    session = ChatSession("runs/r", command=fake_cli)
    try:
        parts = list(session.stream("Who are you?"))
        assert parts[-1] == "I am Nova, you said: Who are you?"
        session.clear()
        assert session.reply("multi\nline") == "I am Nova, you said: multi line"
        with pytest.raises(FtCoreError, match="empty message"):
            session.reply("  ")
    finally:
        session.close()
    assert session.process.poll() is not None


def test_export_says_when_not_installed(ws: Workspace) -> None:
    assert "not installed" in logic.export_run(ws, "r", installed=False)


def test_choices_from_the_plugin_manager() -> None:
    class Plugins:
        def names(self, kind: str) -> list[str]:
            return {"chat_template": ["chatml"], "stage": ["sft", "dpo"], "cli_command": ["run"]}.get(
                kind, []
            )

    choices = choices_from(Plugins())
    assert choices.templates == ["auto", "chatml"] and choices.stages == ["sft", "dpo"]
    assert choices.adapters == ["lora"] and choices.quantizers == ["none"] and choices.commands == ["run"]


def test_port_in_use_is_a_clear_error_exit_2(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(FtCoreError, match="already in use"):
            check_port("127.0.0.1", port)
        done = subprocess.run(
            [sys.executable, "-m", "ft_core.cli", "board", "--port", str(port), "--runs-dir", str(tmp_path / "runs")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"ft-core: error: port {port} on 127.0.0.1 is already in use"), done.stderr


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2-VL (``ft_core.engine.vision.tiny``) after a few LoRA steps on the shapes demo set."""
    qwen_vl = pytest.importorskip("ft_core_qwen_vl")
    from ft_core.engine.vision import tiny
    from ft_core.testing import run_config

    tmp = tmp_path_factory.mktemp("board-vlm")
    config = {
        "model": {"name_or_path": str(tiny.write(tmp / "model"))},
        "template": {"name": "qwen2_vl"},
        "data": {"dataset": ["vlm_shapes_demo"], "cutoff_len": 128, "max_samples": 4},
        "adapter": {"method": "lora", "rank": 4, "alpha": 8, "targets": "all"},
        "training": {"output_dir": str(tmp / "run"), "max_steps": 2, "per_device_train_batch_size": 2,
                     "use_cpu": True, "plot_loss": False},
    }  # fmt: skip
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return Path(run_config(path, qwen_vl))


def test_chat_session_sends_an_uploaded_image_to_a_vision_run(vision_run: Path, tmp_path: Path) -> None:
    from ft_core.engine.vision.shapes import draw

    image = tmp_path / "upload.png"
    draw("circle", "red", (8, 8, 50, 50)).save(image)
    session = ChatSession(str(vision_run), max_new_tokens=4)
    try:
        assert session.reply("What is in the picture?", images=[str(image)])
        assert session._err.count("attached to the next message") == 1
        with pytest.raises(FtCoreError, match="no such file"):
            session.reply("again?", images=[str(tmp_path / "missing.png")])
        assert session.reply("and without an image?")  # the chat goes on
    finally:
        session.close()


def test_chat_session_image_to_a_text_run_is_refused(tmp_path: Path) -> None:
    from ft_core.testing.tiny import save_tiny_model_dir

    template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    model = save_tiny_model_dir(str(tmp_path / "tiny"), chat_template=template)
    (tmp_path / "a.png").write_bytes(b"png")
    session = ChatSession(model, max_new_tokens=2)
    try:
        with pytest.raises(FtCoreError, match="reads text only"):
            session.reply("hi", images=[str(tmp_path / "a.png")])
    finally:
        session.close()
