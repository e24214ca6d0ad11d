"""The board's Gradio interface: tabs Model, Data, Template, Train, Run, Chat, Export over :mod:`ft_core_board.logic`.

Every element a test or a user script needs has an ``elem_id`` (``board-...``).
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ft_core.api import FtCoreError
from ft_core_board.choices import Choices
from ft_core_board.logic import (
    EMBEDDED_MODEL,
    BoardForm,
    ChatSession,
    RunManager,
    Workspace,
    build_config,
    config_yaml,
    dataset_registry,
    export_run,
    follow,
    preview_rows,
    render_template,
    validate,
)

SCHEDULERS = ["cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]
FORM_FIELDS = [f.name for f in fields(BoardForm)]


def _progress_html(fraction: float) -> str:
    return (
        '<div id="board-progress-bar" style="width:100%;background:#e5e7eb;border-radius:6px;height:14px">'
        f'<div style="width:{fraction * 100:.1f}%;background:#f97316;height:14px;border-radius:6px"></div></div>'
    )


def _losses(points: list[tuple[int, float]]) -> pd.DataFrame:
    """The loss curve's points with numeric columns (an empty or object column would make a categorical axis)."""
    frame = pd.DataFrame(points, columns=["step", "loss"])
    return frame.astype({"step": "int64", "loss": "float64"})


class Board:
    """The board's state: the workspace, its run manager and the open chat sessions."""

    def __init__(self, workspace: Workspace, choices: Choices) -> None:
        self.workspace = workspace
        self.choices = choices
        self.runs = RunManager(workspace)
        self.chats: dict[tuple[str, int], ChatSession] = {}
        self._chat_lock = threading.Lock()

    # ---- forms -> config
    def form(self, *values: Any) -> BoardForm:
        data = dict(zip(FORM_FIELDS, values, strict=False))
        data["datasets"] = list(data.get("datasets") or [])
        data["max_samples"] = int(data["max_samples"]) if data.get("max_samples") else None
        return BoardForm(**data)

    def preview_yaml(self, *values: Any) -> str:
        form = self.form(*values)
        try:
            name = self.workspace.check_name(form.run_name)
            return config_yaml(build_config(form, self.workspace), self.workspace.config_path(name))
        except FtCoreError as exc:
            return f"# cannot build the config: {exc}\n"

    def check(self, *values: Any) -> str:
        result = validate(self.workspace, self.form(*values))
        if result.ok:
            return f"**valid**: {result.output.splitlines()[-1] if result.output else 'OK'}"
        return "**problems**:\n" + "\n".join(f"- {p}" for p in result.problems)

    def start(self, *values: Any) -> tuple[str, Any, Any]:
        form = self.form(*values)
        result = validate(self.workspace, form)
        if not result.ok:
            problems = "**not started**, fix these first:\n" + "\n".join(f"- {p}" for p in result.problems)
            return problems, gr.update(), gr.update()
        try:
            text = config_yaml(build_config(form, self.workspace), self.workspace.config_path(form.run_name))
            message = self.runs.start(form.run_name, text)
        except FtCoreError as exc:
            return f"**error**: {exc}", gr.update(), gr.update()
        runs = self.workspace.list_runs()
        return message, gr.update(choices=runs, value=form.run_name), gr.Tabs(selected="run")

    # ---- data and template
    def dataset_choices(self) -> list[str]:
        try:
            return sorted(dataset_registry(self.workspace))
        except FtCoreError:
            return []

    def preview(self, datasets: list[str] | None) -> tuple[Any, str]:
        if not datasets:
            return pd.DataFrame(), "pick a dataset to see its first rows"
        try:
            columns, rows, note = preview_rows(self.workspace, datasets[-1])
        except (FtCoreError, OSError, ValueError) as exc:
            return pd.DataFrame(), f"cannot preview {datasets[-1]}: {exc}"
        return pd.DataFrame(rows, columns=columns), note

    def template(self, name: str) -> tuple[list[tuple[str, str | None]], str]:
        try:
            return render_template(name)
        except Exception as exc:  # a subprocess failure is shown, never a crash of the board
            return [], f"cannot render {name}: {exc}"

    # ---- runs
    def run_list(self, current: str | None) -> Any:
        runs = self.workspace.list_runs()
        value = current if current in runs else (runs[0] if runs else None)
        return gr.update(choices=runs, value=value)

    def refresh(self, name: str | None) -> tuple[str, str, Any, str]:
        if not name:
            return "no run selected", _progress_html(0), _losses([]), ""
        try:
            view = follow(self.workspace, name, self.runs.returncode(name))
        except FtCoreError as exc:
            return f"**error**: {exc}", _progress_html(0), _losses([]), ""
        losses = _losses(view.losses)
        return view.summary(), _progress_html(view.progress), losses, view.log_tail

    def cancel(self, name: str | None) -> str:
        if not name:
            return "no run selected"
        try:
            return self.runs.cancel(name)
        except FtCoreError as exc:
            return f"**error**: {exc}"

    def resume(self, name: str | None) -> str:
        if not name:
            return "no run selected"
        try:
            return self.runs.resume(name)
        except FtCoreError as exc:
            return f"**error**: {exc}"

    # ---- chat
    def _session(self, name: str, max_new_tokens: int) -> ChatSession:
        key = (name, int(max_new_tokens))
        with self._chat_lock:
            session = self.chats.get(key)
            if session is None or session.process.poll() is not None:
                for (other, tokens), old in list(self.chats.items()):
                    old.close()  # one loaded model at a time
                    del self.chats[(other, tokens)]
                target = str(self.workspace.run_dir(name))
                session = self.chats[key] = ChatSession(target, max_new_tokens=int(max_new_tokens))
            return session

    def chat(
        self,
        name: str | None,
        message: str,
        history: list[dict[str, Any]],
        max_new_tokens: float,
        image: str | None = None,
    ) -> Any:
        """Send ``message`` (and ``image``, an uploaded file's path, for a vision-language run); yields the chat,
        the message box and the image box (cleared once sent)."""
        history = list(history or [])
        if not name:
            yield [*history, {"role": "assistant", "content": "pick a run first"}], message, image
            return
        if not (message or "").strip():
            yield history, "", image
            return
        shown = f"[image: {Path(image).name}] {message}" if image else message
        history = [*history, {"role": "user", "content": shown}]
        yield [*history, {"role": "assistant", "content": "…"}], "", None
        try:
            session = self._session(name, int(max_new_tokens))
            for partial in session.stream(message, images=[image] if image else []):
                yield [*history, {"role": "assistant", "content": partial or "…"}], "", None
        except FtCoreError as exc:
            yield [*history, {"role": "assistant", "content": f"error: {exc}"}], "", None

    def clear_chat(self, name: str | None, max_new_tokens: float) -> list[dict[str, Any]]:
        session = self.chats.get((name or "", int(max_new_tokens)))
        if session is not None and session.process.poll() is None:
            session.clear()
        return []

    def export(self, name: str | None) -> str:
        if not name:
            return "no run selected"
        try:
            return export_run(self.workspace, name, "export" in self.choices.commands)
        except FtCoreError as exc:
            return f"**error**: {exc}"

    def close(self) -> None:
        for session in self.chats.values():
            session.close()
        self.runs.shutdown()


def build_app(board: Board) -> gr.Blocks:
    """The Gradio app of ``board``."""
    defaults = BoardForm()
    c = board.choices
    with gr.Blocks(title="ft-core board") as app:
        gr.Markdown(
            f"## ft-core board\nRuns, configs and logs go to `{board.workspace.runs_dir}`; datasets come from "
            f"`{board.workspace.data_dir}/dataset_info.json` and the built-in demo sets."
        )
        run_name = gr.Textbox(defaults.run_name, label="Run name", elem_id="board-run-name")
        with gr.Tabs(selected="model") as tabs:
            with gr.Tab("Model", id="model"):
                model = gr.Dropdown(
                    board.workspace.list_models(),
                    value=EMBEDDED_MODEL,
                    allow_custom_value=True,
                    label="Model (the embedded alias or a folder inside --model-dir)",
                    elem_id="board-model",
                )
                with gr.Row():
                    quantization = gr.Dropdown(
                        c.quantizers, value="none", label="Quantization", elem_id="board-quant"
                    )
                    quant_bits = gr.Radio(
                        [4, 8], value=4, label="bits (bitsandbytes)", elem_id="board-quant-bits"
                    )
                    precision = gr.Dropdown(
                        ["auto", "fp32", "bf16", "fp16"],
                        value="auto",
                        label="Precision",
                        elem_id="board-precision",
                    )
            with gr.Tab("Data", id="data"):
                with gr.Row():
                    datasets = gr.Dropdown(
                        board.dataset_choices(),
                        value=defaults.datasets,
                        multiselect=True,
                        label="Datasets",
                        elem_id="board-datasets",
                    )
                    cutoff_len = gr.Number(
                        defaults.cutoff_len, label="cutoff_len", precision=0, elem_id="board-cutoff"
                    )
                    max_samples = gr.Number(
                        None, label="max_samples (0: all)", precision=0, elem_id="board-max-samples"
                    )
                    val_size = gr.Number(0.0, label="val_size", elem_id="board-val-size")
                preview_note = gr.Markdown(elem_id="board-preview-note")
                preview = gr.Dataframe(label="First rows", wrap=True, elem_id="board-preview")
            with gr.Tab("Template", id="template"):
                with gr.Row():
                    template = gr.Dropdown(
                        c.templates, value="auto", label="Chat template", elem_id="board-template"
                    )
                    system = gr.Textbox("", label="System prompt (template.system)", elem_id="board-system")
                template_note = gr.Markdown(elem_id="board-template-note")
                rendering = gr.HighlightedText(
                    label="Rendering (trained spans highlighted)",
                    color_map={"trained": "green"},
                    show_legend=True,
                    elem_id="board-rendering",
                )
            with gr.Tab("Train", id="train"):
                with gr.Row():
                    stage = gr.Dropdown(c.stages, value="sft", label="Stage", elem_id="board-stage")
                    adapter = gr.Dropdown(c.adapters, value="lora", label="Adapter", elem_id="board-adapter")
                    lora_rank = gr.Number(
                        defaults.lora_rank, label="LoRA rank", precision=0, elem_id="board-lora-rank"
                    )
                    lora_alpha = gr.Number(
                        defaults.lora_alpha, label="LoRA alpha", elem_id="board-lora-alpha"
                    )
                    lora_dropout = gr.Number(0.0, label="LoRA dropout", elem_id="board-lora-dropout")
                    lora_targets = gr.Textbox("all", label="LoRA targets", elem_id="board-lora-targets")
                    freeze_layers = gr.Number(
                        2, label="freeze: trainable layers", precision=0, elem_id="board-freeze"
                    )
                with gr.Row():
                    learning_rate = gr.Number(
                        defaults.learning_rate, label="learning_rate", elem_id="board-lr"
                    )
                    epochs = gr.Number(
                        defaults.num_train_epochs, label="num_train_epochs", elem_id="board-epochs"
                    )
                    max_steps = gr.Number(
                        -1, label="max_steps (-1: epochs)", precision=0, elem_id="board-max-steps"
                    )
                    batch_size = gr.Number(
                        1, label="batch size per device", precision=0, elem_id="board-batch"
                    )
                    grad_accum = gr.Number(
                        1, label="gradient accumulation", precision=0, elem_id="board-accum"
                    )
                with gr.Row():
                    scheduler = gr.Dropdown(
                        SCHEDULERS, value="cosine", label="lr_scheduler_type", elem_id="board-sched"
                    )
                    warmup = gr.Number(0.0, label="warmup_ratio", elem_id="board-warmup")
                    logging_steps = gr.Number(
                        10, label="logging_steps", precision=0, elem_id="board-logging-steps"
                    )
                    save_steps = gr.Number(500, label="save_steps", precision=0, elem_id="board-save-steps")
                    seed = gr.Number(42, label="seed", precision=0, elem_id="board-seed")
                    overwrite = gr.Checkbox(False, label="overwrite_output_dir", elem_id="board-overwrite")
                yaml_view = gr.Code(language="yaml", label="The config it will run", elem_id="board-yaml")
                with gr.Row():
                    check_button = gr.Button("Check", elem_id="board-check")
                    start_button = gr.Button("Start", variant="primary", elem_id="board-start")
                check_out = gr.Markdown(elem_id="board-check-out")
            with gr.Tab("Run", id="run"):
                with gr.Row():
                    run_pick = gr.Dropdown(
                        board.workspace.list_runs(),
                        label="Run",
                        allow_custom_value=False,
                        elem_id="board-run-pick",
                    )
                    refresh_runs = gr.Button("Refresh list", elem_id="board-refresh-runs")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="board-cancel")
                    resume_button = gr.Button("Resume", elem_id="board-resume")
                status = gr.Markdown("no run selected", elem_id="board-status")
                progress = gr.HTML(_progress_html(0), elem_id="board-progress")
                action_out = gr.Markdown(elem_id="board-action-out")
                loss_plot = gr.LinePlot(
                    _losses([]),
                    x="step",
                    y="loss",
                    title="loss",
                    elem_id="board-loss",
                )
                log_view = gr.Textbox(
                    label="Log", lines=20, max_lines=20, autoscroll=True, elem_id="board-log"
                )
            with gr.Tab("Chat", id="chat"):
                gr.Markdown(
                    "Chat with the run selected on the Run tab (base model + its adapter, its chat template)."
                )
                chat_tokens = gr.Slider(
                    8, 512, value=64, step=8, label="max new tokens", elem_id="board-chat-tokens"
                )
                chatbot = gr.Chatbot(label="Chat", height=360, elem_id="board-chatbot")
                chat_image = gr.Image(
                    label="Image (vision-language runs: sent with the next message)",
                    type="filepath",
                    sources=["upload"],
                    height=160,
                    elem_id="board-chat-image",
                )
                with gr.Row():
                    message = gr.Textbox(label="Message", scale=4, elem_id="board-message")
                    send = gr.Button("Send", variant="primary", elem_id="board-send")
                    clear = gr.Button("Clear", elem_id="board-clear")
            with gr.Tab("Export", id="export"):
                installed = "export" in c.commands
                gr.Markdown(
                    "Export the run selected on the Run tab with `ft-core export RUN_DIR` (merged model)."
                    if installed
                    else "`ft-core export` is not installed (`pip install ft-core-export`); the button says so."
                )
                export_button = gr.Button("Export", elem_id="board-export")
                export_out = gr.Textbox(label="Output", lines=8, elem_id="board-export-out")

        form_inputs: list[Any] = [
            run_name, model, datasets, template, system, stage, adapter, lora_rank, lora_alpha, lora_dropout,
            lora_targets, freeze_layers, quantization, quant_bits, cutoff_len, max_samples, val_size, learning_rate,
            epochs, max_steps, batch_size, grad_accum, scheduler, warmup, logging_steps, save_steps, precision, seed,
            overwrite,
        ]  # fmt: skip
        assert len(form_inputs) == len(FORM_FIELDS)
        for component in form_inputs:
            component.change(board.preview_yaml, form_inputs, yaml_view)
        app.load(board.preview_yaml, form_inputs, yaml_view)
        datasets.change(board.preview, datasets, [preview, preview_note])
        app.load(board.preview, datasets, [preview, preview_note])
        template.change(board.template, template, [rendering, template_note])
        app.load(board.template, template, [rendering, template_note])
        check_button.click(board.check, form_inputs, check_out)
        start_button.click(board.start, form_inputs, [check_out, run_pick, tabs])
        refresh_runs.click(board.run_list, run_pick, run_pick)
        outputs = [status, progress, loss_plot, log_view]
        run_pick.change(board.refresh, run_pick, outputs)
        gr.Timer(1.5).tick(board.refresh, run_pick, outputs, show_progress="hidden")
        cancel_button.click(board.cancel, run_pick, action_out)
        resume_button.click(board.resume, run_pick, action_out)
        chat_inputs = [run_pick, message, chatbot, chat_tokens, chat_image]
        send.click(board.chat, chat_inputs, [chatbot, message, chat_image])
        message.submit(board.chat, chat_inputs, [chatbot, message, chat_image])
        clear.click(board.clear_chat, [run_pick, chat_tokens], chatbot)
        export_button.click(board.export, run_pick, export_out)
    return app


def serve(workspace: Workspace, choices: Choices, host: str, port: int) -> None:
    """Serve the board until interrupted; the runs it started are interrupted (cleanly) when it stops."""
    board = Board(workspace, choices)
    atexit.register(board.close)
    signal.signal(
        signal.SIGTERM, lambda *_: sys.exit(0)
    )  # SIGTERM stops the board as Ctrl-C does (atexit runs)
    app = build_app(board)
    print(
        f"ft-core board on http://{host}:{port} (runs in {workspace.runs_dir}); Ctrl-C stops it", flush=True
    )
    app.queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False, quiet=True,
        show_error=True,
    )  # fmt: skip
