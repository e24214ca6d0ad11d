"""What the board does, without a browser: the workspace's folders, the config built from the forms, validation,
dataset previews, template renderings, starting / following / cancelling / resuming runs, chat and export.

Everything that trains, validates, renders or chats runs as an ``ft-core`` subprocess (``python -m ft_core.cli``),
so the board process never imports torch and stays responsive; a run is followed by reading its folder
(``manifest.json``, ``metrics.jsonl``) and the log file the board writes for it. Only ``ft_core.api`` is imported.
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ft_core.api import FtCoreError

EMBEDDED_MODEL = "smollm2-135m-instruct"
MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STEP = re.compile(r"\bstep (\d+)/(\d+)\b")
_ERROR = re.compile(r"^ft-core: (?:error: )?(.*)$")


def cli_command() -> list[str]:
    """How to call ft-core in a subprocess: this interpreter's ``ft_core.cli``."""
    return [sys.executable, "-m", "ft_core.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


# ----------------------------------------------------------------------------------------------------- workspace


@dataclass(frozen=True)
class Workspace:
    """The folders the board may read and write: ``runs_dir`` (configs, logs, run folders), ``data_dir`` (a
    ``dataset_info.json`` and its files) and ``model_dirs`` (where local models may be picked from). Every path
    that comes from the browser is checked against them: ``..`` and paths outside are refused."""

    runs_dir: Path
    data_dir: Path
    model_dirs: tuple[Path, ...] = ()

    def roots(self) -> tuple[Path, ...]:
        return (self.runs_dir, self.data_dir, *self.model_dirs)

    def inside(self, value: str, roots: Sequence[Path] | None = None, what: str = "path") -> Path:
        """``value`` as a path inside one of ``roots`` (default: all of the workspace's), else an error."""
        text = str(value).strip()
        if not text:
            raise FtCoreError(f"{what}: empty")
        path = Path(os.path.expanduser(text))
        if ".." in path.parts:
            raise FtCoreError(
                f"{what} {text!r}: '..' is not allowed; the board works only inside its folders"
            )
        allowed = tuple(roots if roots is not None else self.roots())
        resolved = path.resolve()
        for root in allowed:
            if resolved == root.resolve() or root.resolve() in resolved.parents:
                return path
        names = ", ".join(str(root) for root in allowed)
        raise FtCoreError(f"{what} {text!r} is outside the board's folders ({names})")

    def check_name(self, name: str) -> str:
        """A run name: letters, digits, ``.``, ``_``, ``-`` (no separators), so it stays inside ``runs_dir``."""
        name = (name or "").strip()
        if not _NAME.match(name) or name in (".", ".."):
            raise FtCoreError(
                f"run name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (no '/', no '..'), starting with a "
                "letter or digit"
            )
        return name

    def run_dir(self, name: str) -> Path:
        return self.runs_dir / self.check_name(name)

    def config_path(self, name: str) -> Path:
        """The config the board writes for a run: ``<runs_dir>/<name>.yaml``."""
        return self.runs_dir / f"{self.check_name(name)}.yaml"

    def log_path(self, name: str) -> Path:
        """The run's console output (stdout and stderr of ``ft-core run``): ``<runs_dir>/<name>.log``."""
        return self.runs_dir / f"{self.check_name(name)}.log"

    def resume_config(self, name: str) -> Path:
        """What resuming runs: the run folder's ``config.yaml`` (the merged config), else the board's file."""
        saved = self.run_dir(name) / "config.yaml"
        return saved if saved.is_file() else self.config_path(name)

    def model_ref(self, value: str) -> str:
        """The embedded model's alias as is; a local path must lie inside the workspace's folders."""
        text = (value or "").strip()
        if text.lower() == EMBEDDED_MODEL:
            return EMBEDDED_MODEL
        return str(self.inside(text, what="model"))

    def list_runs(self) -> list[str]:
        """Runs in ``runs_dir``: folders with a manifest, and configs the board wrote, newest first."""
        if not self.runs_dir.is_dir():
            return []
        found: dict[str, float] = {}
        for entry in self.runs_dir.iterdir():
            name = entry.stem if entry.suffix == ".yaml" and entry.is_file() else entry.name
            if entry.name.startswith(".") or not _NAME.match(name):
                continue
            if (entry.is_dir() and (entry / MANIFEST).is_file()) or (
                entry.is_file() and entry.suffix == ".yaml"
            ):
                found[name] = max(found.get(name, 0.0), entry.stat().st_mtime)
        return sorted(found, key=lambda n: -found[n])

    def list_models(self) -> list[str]:
        """The embedded alias plus Hugging Face folders (with ``config.json``) and ``.gguf`` files directly in the
        model folders."""
        models = [EMBEDDED_MODEL]
        for root in self.model_dirs:
            if root.is_dir():
                for entry in sorted(root.iterdir()):
                    if (entry / "config.json").is_file() or entry.suffix == ".gguf":
                        models.append(str(entry))
        return models


# -------------------------------------------------------------------------------------------------------- config


@dataclass
class BoardForm:
    """The board's form fields; :func:`build_config` turns them into the config ``ft-core run`` takes."""

    run_name: str = "board-run"
    model: str = EMBEDDED_MODEL
    datasets: list[str] = field(default_factory=lambda: ["identity"])
    template: str = "auto"
    system: str = ""
    stage: str = "sft"
    adapter: str = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "all"
    freeze_layers: int = 2
    quantization: str = "none"
    quant_bits: int = 4
    cutoff_len: int = 256
    max_samples: int | None = None
    val_size: float = 0.0
    learning_rate: float = 1e-4
    num_train_epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.0
    logging_steps: int = 10
    save_steps: int = 500
    precision: str = "auto"
    seed: int = 42
    overwrite_output_dir: bool = False


def _int(value: Any) -> int:
    return int(float(value))


def build_config(form: BoardForm, workspace: Workspace) -> dict[str, Any]:
    """The config for ``form``, in the CLI's layout. Paths are checked against the workspace (an error if outside);
    ``training.output_dir`` is ``<runs_dir>/<run_name>``."""
    name = workspace.check_name(form.run_name)
    datasets = [d.strip() for d in form.datasets if d and d.strip()]
    config: dict[str, Any] = {"model": {"name_or_path": workspace.model_ref(form.model)}}
    if (form.template and form.template != "auto") or form.system.strip():
        template: dict[str, Any] = {"name": form.template or "auto"}
        if form.system.strip():
            template["system"] = form.system.strip()
        config["template"] = template
    data: dict[str, Any] = {"dataset": datasets, "cutoff_len": _int(form.cutoff_len)}
    if str(workspace.data_dir) != "data":
        data["dataset_dir"] = str(workspace.data_dir)
    if form.max_samples not in (None, "", 0):
        data["max_samples"] = _int(form.max_samples)
    if form.val_size:
        data["val_size"] = float(form.val_size)
    config["data"] = data
    if form.stage and form.stage != "sft":
        config["stage"] = {"name": form.stage}
    adapter: dict[str, Any] = {"method": form.adapter}
    if form.adapter in ("lora", "unsloth_lora"):
        adapter.update(rank=_int(form.lora_rank), alpha=float(form.lora_alpha))
        if form.lora_dropout:
            adapter["dropout"] = float(form.lora_dropout)
        targets = (form.lora_targets or "all").strip()
        if targets != "all":
            adapter["targets"] = [t.strip() for t in targets.split(",") if t.strip()]
    elif form.adapter == "freeze":
        adapter["trainable_layers"] = _int(form.freeze_layers)
    config["adapter"] = adapter
    if form.quantization and form.quantization != "none":
        quantization: dict[str, Any] = {"method": form.quantization}
        if form.quantization in ("bitsandbytes", "bnb"):
            quantization["bits"] = _int(form.quant_bits)
        config["quantization"] = quantization
    training: dict[str, Any] = {
        "output_dir": str(workspace.runs_dir / name),
        "learning_rate": float(form.learning_rate),
        "num_train_epochs": float(form.num_train_epochs),
    }
    if _int(form.max_steps) > 0:
        training["max_steps"] = _int(form.max_steps)
    training.update(
        per_device_train_batch_size=_int(form.batch_size),
        gradient_accumulation_steps=_int(form.gradient_accumulation_steps),
        lr_scheduler_type=form.lr_scheduler_type,
        warmup_ratio=float(form.warmup_ratio),
        logging_steps=_int(form.logging_steps),
        save_steps=_int(form.save_steps),
        precision=form.precision,
        seed=_int(form.seed),
    )
    if form.overwrite_output_dir:
        training["overwrite_output_dir"] = True
    config["training"] = training
    return config


def config_yaml(config: dict[str, Any], path: Path | None = None) -> str:
    """The YAML text of ``config``, opening with the command that runs it (as the example configs do)."""
    head = f"# ft-core run {path}\n" if path is not None else ""
    head += "# written by ft-core board\n"
    return head + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def write_config(workspace: Workspace, name: str, text: str) -> Path:
    """Write the run's config to ``<runs_dir>/<name>.yaml`` (the file ``ft-core run`` is given)."""
    path = workspace.config_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Validation:
    ok: bool
    problems: list[str]
    output: str


def parse_problems(output: str) -> list[str]:
    """The problems in ``ft-core validate``'s output: the ``ft-core: error:`` line and its ``- ...`` items."""
    problems: list[str] = []
    collecting = False
    for line in output.splitlines():
        match = _ERROR.match(line.strip())
        if match:
            collecting = True
            head = match.group(1).strip()
            if head and not head.endswith(":"):
                problems.append(head)
            continue
        stripped = line.strip()
        if collecting and stripped.startswith("- "):
            problems.append(stripped[2:])
        elif collecting and stripped and problems and line.startswith("    "):
            problems[-1] += " " + stripped
    return problems


def validate(workspace: Workspace, form: BoardForm, timeout: float = 300) -> Validation:
    """Build the config and run ``ft-core validate`` on it (keys, types, components, datasets, tokenizer, template,
    data rows; no weights load). The file is written to a hidden file in ``runs_dir`` and removed after."""
    try:
        config = build_config(form, workspace)
    except FtCoreError as exc:
        return Validation(False, [str(exc)], str(exc))
    workspace.runs_dir.mkdir(parents=True, exist_ok=True)
    path = workspace.runs_dir / f".board-check-{workspace.check_name(form.run_name)}.yaml"
    path.write_text(config_yaml(config), encoding="utf-8")
    try:
        done = subprocess.run(
            [*cli_command(), "validate", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
        )
    except subprocess.TimeoutExpired:
        return Validation(False, [f"ft-core validate took longer than {timeout:.0f} s"], "")
    finally:
        path.unlink(missing_ok=True)
    output = (done.stdout + done.stderr).replace(str(path), "config")
    if done.returncode == 0:
        return Validation(True, [], output.strip())
    return Validation(False, parse_problems(output) or [output.strip()[-2000:]], output.strip())


# ---------------------------------------------------------------------------------------------------------- data


def demo_dataset_info() -> tuple[dict[str, Any], Path | None]:
    """The built-in demo sets' ``dataset_info.json`` and their folder (shipped as package data of ft-core)."""
    try:
        folder = resources.files("ft_core") / "demo_data"
        info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
        return info, Path(str(folder))
    except (OSError, ValueError, ModuleNotFoundError):
        return {}, None


def dataset_registry(workspace: Workspace) -> dict[str, tuple[dict[str, Any], Path]]:
    """Dataset name -> (its ``dataset_info.json`` entry, the folder its file is relative to): the demo sets, then
    ``<data_dir>/dataset_info.json`` (whose entries win, as in ``ft-core run``)."""
    registry: dict[str, tuple[dict[str, Any], Path]] = {}
    info, folder = demo_dataset_info()
    if folder is not None:
        registry.update({name: (entry, folder) for name, entry in info.items() if isinstance(entry, dict)})
    user_file = workspace.data_dir / "dataset_info.json"
    if user_file.is_file():
        try:
            user = json.loads(user_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FtCoreError(f"{user_file}: not valid JSON ({exc})") from None
        if isinstance(user, dict):
            registry.update(
                {name: (entry, workspace.data_dir) for name, entry in user.items() if isinstance(entry, dict)}
            )
    return registry


def _read_rows(path: Path, limit: int) -> list[Any]:
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if not p.name.startswith(".") and p.suffix in (".json", ".jsonl", ".csv", ".txt")
        )
        if not files:
            return []
        path = files[0]
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig") as handle:
        if suffix == ".csv":
            return [row for _, row in zip(range(limit), csv.DictReader(handle), strict=False)]
        if suffix == ".txt":
            return [
                {"text": line.rstrip("\n")}
                for _, line in zip(range(limit), (x for x in handle if x.strip()), strict=False)
            ]
        if suffix in (".json", ".jsonl"):
            text = handle.read()
            if text.lstrip().startswith("["):
                rows = json.loads(text)
                return list(rows[:limit]) if isinstance(rows, list) else []
            return [json.loads(line) for line in text.splitlines() if line.strip()][:limit]
    raise FtCoreError(f"{path.name}: the board previews .json, .jsonl, .csv and .txt files")


def preview_rows(workspace: Workspace, name: str, limit: int = 5) -> tuple[list[str], list[list[str]], str]:
    """The first ``limit`` rows of dataset ``name``: column names, rows as text cells, and a one-line summary."""
    registry = dataset_registry(workspace)
    if name not in registry:
        raise FtCoreError(f"unknown dataset {name!r}; known: {', '.join(sorted(registry))}")
    entry, folder = registry[name]
    file_name = entry.get("file_name")
    if not isinstance(file_name, str):
        return [], [], f"{name}: no local file_name (hub datasets are not downloaded)"
    path = folder / file_name
    if ".." in Path(file_name).parts or Path(file_name).is_absolute():
        raise FtCoreError(
            f"{name}: file_name {file_name!r} leaves the dataset folder; the board does not read it"
        )
    if not path.exists():
        return [], [], f"{name}: {file_name} is missing"
    rows = _read_rows(path, limit)
    columns: list[str] = []
    for row in rows:
        for key in row if isinstance(row, dict) else ["value"]:
            if key not in columns:
                columns.append(key)

    def cell(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 300 else text[:297] + "..."

    cells = [
        [cell(row.get(c, "")) if isinstance(row, dict) else cell(row) for c in columns] if columns else []
        for row in rows
    ]
    formatting = entry.get("formatting", "alpaca")
    extra = ", ranking" if entry.get("ranking") else ""
    return columns, cells, f"{name}: {formatting}{extra}, file {file_name}; first {len(rows)} rows"


# ------------------------------------------------------------------------------------------------------ template


def render_template(name: str, timeout: float = 120) -> tuple[list[tuple[str, str | None]], str]:
    """``ft-core template show NAME --json`` as highlighted segments (``(text, "trained" | None)``) and a note."""
    if not name or name == "auto":
        return [], (
            "`auto` uses the tokenizer's own chat template (verbatim); pick a registered template to see how it "
            "renders a conversation and which spans are trained."
        )
    done = subprocess.run(
        [*cli_command(), "template", "show", name, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )
    if done.returncode != 0:
        return [], (done.stderr.strip() or done.stdout.strip())[-2000:]
    shown = json.loads(done.stdout)
    return highlight(shown["text"], shown.get("trained", [])), f"`{name}`: trained spans are highlighted"


def highlight(text: str, spans: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """``text`` cut into (segment, ``"trained"`` or ``None``) by the trained ``spans`` (start / end offsets)."""
    out: list[tuple[str, str | None]] = []
    position = 0
    for span in sorted(spans, key=lambda s: s["start"]):
        if span["start"] > position:
            out.append((text[position : span["start"]], None))
        out.append((text[span["start"] : span["end"]], "trained"))
        position = span["end"]
    if position < len(text):
        out.append((text[position:], None))
    return out


# ---------------------------------------------------------------------------------------------------------- runs


@dataclass
class RunView:
    """What the board shows of a run: its status, progress, loss points, the log's tail."""

    name: str
    status: str
    step: int | None = None
    max_steps: int | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    log_tail: str = ""
    error: str | None = None
    finished: bool = False

    @property
    def progress(self) -> float:
        if self.status == "completed":
            return 1.0
        if self.step is None or not self.max_steps:
            return 0.0
        return min(1.0, self.step / self.max_steps)

    def summary(self) -> str:
        parts = [f"**{self.name}**: {self.status}"]
        if self.max_steps:
            parts.append(f"step {self.step or 0}/{self.max_steps} ({self.progress:.0%})")
        if self.losses:
            parts.append(f"loss {self.losses[-1][1]:.4g}")
        if self.error:
            parts.append(f"error: {self.error}")
        return " | ".join(parts)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return records


def loss_points(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, loss) of the step records, the later record winning for a step logged twice (after a resume); the
    trainer's closing summary record is left out."""
    points: dict[int, float] = {}
    for record in records:
        if "train_runtime" in record or not isinstance(record.get("loss"), (int, float)):
            continue
        if isinstance(record.get("step"), int):
            points[record["step"]] = float(record["loss"])
    return sorted(points.items())


def tail(path: Path, lines: int = 20, max_bytes: int = 64_000) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        text = handle.read().decode("utf-8", errors="replace")
    text = text.replace("\r", "\n")
    return "\n".join(line for line in text.splitlines()[-lines:])


def read_manifest(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def follow(workspace: Workspace, name: str, returncode: int | str | None = "unknown") -> RunView:
    """The run's state from its folder and log. ``returncode``: ``None`` while the board's process for it runs, its
    exit status once it ended, ``"unknown"`` when the board did not start it (then the manifest decides)."""
    run_dir = workspace.run_dir(name)
    manifest = read_manifest(run_dir)
    status = manifest.get("status")
    log = tail(workspace.log_path(name))
    if returncode is None:
        status = "running" if status == "running" else "starting"
    elif returncode != "unknown" and (status in (None, "running")):
        status = "completed" if returncode == 0 and status is None else f"exited with code {returncode}"
    elif status is None:
        status = "not started" if not log else "stopped"
    view = RunView(name=name, status=str(status), losses=loss_points(read_metrics(run_dir)), log_tail=log)
    steps = _STEP.findall(log)
    if steps:
        view.step, view.max_steps = int(steps[-1][0]), int(steps[-1][1])
    elif view.losses:
        view.step = view.losses[-1][0]
    state = run_dir / "trainer_state.json"
    if view.status == "completed" and state.is_file():
        try:
            trainer = json.loads(state.read_text(encoding="utf-8"))
            view.step, view.max_steps = trainer.get("global_step", view.step), trainer.get("max_steps")
        except ValueError:
            pass
    if manifest.get("error"):
        view.error = str(manifest["error"])
    elif isinstance(returncode, int) and returncode not in (0, 130):
        errors = [m.group(1) for line in log.splitlines() if (m := _ERROR.match(line))]
        view.error = errors[-1] if errors else None
    view.finished = view.status not in ("running", "starting")
    return view


class RunManager:
    """Starts ``ft-core run`` for the board's runs (stdout and stderr into ``<runs_dir>/<name>.log``), cancels them
    with ``ft-core cancel`` and resumes them by running their saved config again."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def returncode(self, name: str) -> int | str | None:
        process = self.processes.get(name)
        return "unknown" if process is None else process.poll()

    def running(self, name: str) -> bool:
        return self.returncode(name) is None

    def _launch(self, name: str, config: Path, note: str) -> str:
        with self._lock:
            if self.running(name):
                raise FtCoreError(f"{name} is already running")
            manifest = read_manifest(self.workspace.run_dir(name))
            if manifest.get("status") == "running" and name not in self.processes:
                raise FtCoreError(
                    f"{name}: its manifest says running (started elsewhere?); cancel it first or wait for it"
                )
            log_path = self.workspace.log_path(name)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            command = [*cli_command(), "run", str(config)]
            with log_path.open("ab") as log:
                log.write(
                    f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {note}: ft-core run {config}\n".encode()
                )
                log.flush()
                self.processes[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env()
                )
        return f"{note} {name}: ft-core run {config} (log: {log_path})"

    def start(self, name: str, text: str) -> str:
        """Write the config to ``<runs_dir>/<name>.yaml`` and run it."""
        name = self.workspace.check_name(name)
        if self.running(name):
            raise FtCoreError(f"{name} is already running")
        return self._launch(name, write_config(self.workspace, name, text), "started")

    def resume(self, name: str) -> str:
        """Run the run's saved config again: ``ft-core run`` resumes from its newest checkpoint."""
        config = self.workspace.resume_config(name)
        if not config.is_file():
            raise FtCoreError(f"{name}: no saved config to resume ({config} is missing)")
        status = read_manifest(self.workspace.run_dir(name)).get("status")
        if status == "completed":
            raise FtCoreError(f"{name} has completed; start it again with 'overwrite' or under another name")
        return self._launch(name, config, "resumed")

    def cancel(self, name: str, timeout: float = 120) -> str:
        """``ft-core cancel RUN_DIR``: the run stops after its current optimizer step, keeping a checkpoint. Before
        the run has written its manifest (data, model loading) the board's own process gets SIGINT instead, which
        stops it at once."""
        run_dir = self.workspace.run_dir(name)
        done = subprocess.run(
            [*cli_command(), "cancel", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
        )
        if done.returncode == 0:
            return done.stdout.strip()
        process = self.processes.get(name)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            return f"asked {name} to stop (interrupt: it had not started training yet)"
        raise FtCoreError((done.stderr.strip() or done.stdout.strip()).removeprefix("ft-core: error: "))

    def shutdown(self) -> None:
        """Interrupt the runs the board started (each stops cleanly, keeping a checkpoint)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


# ---------------------------------------------------------------------------------------------------------- chat


class ChatSession:
    """A chat with a run through ``ft-core chat RUN_DIR`` running interactively in a subprocess: the model loads
    once, each message is one input line, the reply is what comes before the next ``User:`` prompt. The session
    keeps the conversation's history (``clear`` starts over). Images (vision-language runs) go first as
    ``/image PATH`` lines, attached to the message that follows."""

    PROMPT = "User: "
    ANSWER = "Assistant: "

    def __init__(self, target: str, max_new_tokens: int = 128, command: Sequence[str] | None = None) -> None:
        self.target = target
        args = [*(command or cli_command()), "chat", target, "--max-new-tokens", str(int(max_new_tokens))]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
        )
        self._out = ""
        self._err = ""
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, args=(self.process.stdout, "_out"), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, "_err"), daemon=True).start()

    def _pump(self, stream: Any, attr: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := os.read(stream.fileno(), 4096):
            with self._cond:
                setattr(self, attr, getattr(self, attr) + decoder.decode(chunk))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, predicate: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                if self.process.poll() is not None:
                    self._cond.wait(0.2)  # the pumps may still hold the last output
                    if predicate():
                        return
                    errors = [m.group(1) for line in self._err.splitlines() if (m := _ERROR.match(line))]
                    raise FtCoreError(
                        f"ft-core chat {self.target} stopped: "
                        + (errors[-1] if errors else self._err[-1500:])
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FtCoreError(f"ft-core chat {self.target}: no answer within {timeout:.0f} s")
                self._cond.wait(min(left, 1.0))

    def ready(self, timeout: float = 600) -> None:
        """Wait until the model has loaded (the first prompt appears)."""
        self._wait(lambda: self._out.endswith(self.PROMPT), timeout)

    def _attach(self, image: str) -> None:
        """Send ``/image PATH`` and wait for the next prompt; a refused image (a text-only run, a missing file)
        raises with the chat's message."""
        if "\n" in image or "\r" in image or not image.strip():
            raise FtCoreError(f"chat: bad image path {image!r}")
        start, err_start = len(self._out), len(self._err)
        assert self.process.stdin is not None
        self.process.stdin.write(f"/image {image}\n".encode())
        self.process.stdin.flush()

        def answered() -> bool:  # the chat says on stderr whether it took the image, then prompts on stdout
            said = self._err[err_start:]
            return self._out[start:].endswith(self.PROMPT) and (
                "/image:" in said or "attached to the" in said
            )

        self._wait(answered, 60)
        with self._cond:
            refused = [line for line in self._err[err_start:].splitlines() if line.startswith("/image:")]
        if refused:
            raise FtCoreError(f"chat: {refused[0].removeprefix('/image:').strip()}")

    def stream(self, message: str, timeout: float = 600, images: Sequence[str] = ()) -> Iterator[str]:
        """Send ``message`` (with ``images``: paths of image files, for a vision-language run); yield the reply
        as it grows."""
        text = " ".join(message.split())
        if not text or text.lower() in ("exit", "quit", "clear", "/image") or text.startswith("/image "):
            raise FtCoreError(
                "chat: empty message (or a word the chat keeps for itself: exit, quit, clear, /image)"
            )
        with self._lock:
            self.ready(timeout)
            for image in images:
                self._attach(str(image))
            start = len(self._out)
            assert self.process.stdin is not None
            self.process.stdin.write((text + "\n").encode("utf-8"))
            self.process.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                with self._cond:
                    self._cond.wait(0.25)
                    new = self._out[start:]
                done = new.endswith("\n" + self.PROMPT)
                reply = new.removeprefix(self.ANSWER)
                if done:
                    yield reply[: -len(self.PROMPT)].rstrip("\n")
                    return
                yield reply
                if self.process.poll() is not None:
                    self._wait(lambda: False, 0)  # raises with the error
                if time.monotonic() > deadline:
                    raise FtCoreError(f"ft-core chat {self.target}: no answer within {timeout:.0f} s")

    def reply(self, message: str, timeout: float = 600, images: Sequence[str] = ()) -> str:
        parts = list(self.stream(message, timeout, images))
        return parts[-1] if parts else ""

    def clear(self) -> None:
        """Start the conversation over (the model stays loaded)."""
        with self._lock:
            self.ready()
            start = len(self._out)
            assert self.process.stdin is not None
            self.process.stdin.write(b"clear\n")
            self.process.stdin.flush()
            self._wait(lambda: self._out[start:].endswith(self.PROMPT), 60)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(b"exit\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()


# -------------------------------------------------------------------------------------------------------- export


def export_run(workspace: Workspace, name: str, installed: bool, timeout: float = 1800) -> str:
    """``ft-core export RUN_DIR`` when the ft-core-export command is installed; else says it is not."""
    run_dir = workspace.run_dir(name)
    if not installed:
        return (
            "`ft-core export` is not installed: `pip install ft-core-export` (or `-e plugins/ft-core-export`) "
            "and restart the board."
        )
    if read_manifest(run_dir).get("status") != "completed":
        return f"{name} has not completed; export a completed run."
    done = subprocess.run(
        [*cli_command(), "export", str(run_dir)], capture_output=True, text=True, timeout=timeout, env=_env()
    )
    output = (done.stdout + done.stderr).strip()
    return f"exit {done.returncode}\n{output}" if done.returncode else output or "exported"
