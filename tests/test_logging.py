"""Console logging: levels and formats, ``--quiet`` / ``--verbose``, plugin loggers under the CLI, ranks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ft_core.cli import main
from ft_core.engine.logs import ConsoleHandler, configure_logging, package_names, trace_logger

#: A third-party plugin (its package name is no ``ft_core_*``) whose command logs one line per level.
PLUGIN = """
import logging

from ft_core.api import CliCommand
from ft_core.api.hookspecs import hookimpl

logger = logging.getLogger(__name__)


class Levels(CliCommand):
    help = "log one line per level"

    def run(self, args):
        logger.debug("debug from the plugin")
        logger.info("info from the plugin")
        logger.warning("warning from the plugin")
        logging.getLogger("ft_core.engine.fake").info("info from core")
        print("the command's product")
        return 0


@hookimpl
def ft_register_cli_commands(register):
    register("levels", Levels())
"""


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A pip-installed-like distribution ``fake-logs`` (module ``fake_ft_logs``) on ``sys.path``."""
    info = tmp_path / "fake_logs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-logs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ft_core]\nlogs = fake_ft_logs\n")
    (tmp_path / "fake_ft_logs.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fake_ft_logs", None)


def test_the_console_handler_formats_each_level_and_writes_to_the_current_stderr(capsys):
    logger = logging.getLogger("ft_core.test_logging")
    logger.info("progress")
    logger.warning("careful")
    logger.error("broken")
    try:
        raise ValueError("boom")
    except ValueError:
        logger.warning("with a traceback", exc_info=True)
    err = capsys.readouterr().err
    assert "[ft-core] progress\n" in err
    assert "ft-core: warning: careful\n" in err
    assert "ft-core: error: broken\n" in err
    assert (
        "ft-core: warning: with a traceback\nTraceback (most recent call last)" in err
        and "ValueError: boom" in err
    )
    logger.debug("hidden at the default level")
    assert capsys.readouterr().err == ""


def test_the_cli_shows_a_plugins_own_logger_lines(plugin_site, capsys):
    assert main(["levels"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the command's product\n"
    assert "[ft-core] info from the plugin\n" in captured.err
    assert "ft-core: warning: warning from the plugin\n" in captured.err
    assert "[ft-core] info from core\n" in captured.err
    assert "debug from the plugin" not in captured.err


def test_quiet_shows_warnings_only(plugin_site, capsys):
    for flag in ("--quiet", "-q"):
        assert main([flag, "levels"]) == 0
        captured = capsys.readouterr()
        assert captured.out == "the command's product\n"
        assert captured.err == "ft-core: warning: warning from the plugin\n"


def test_verbose_shows_debug_lines(plugin_site, capsys):
    for flag in ("--verbose", "-v"):
        assert main([flag, "levels"]) == 0
        err = capsys.readouterr().err
        assert "[ft-core debug] fake_ft_logs: debug from the plugin\n" in err
        assert "[ft-core] info from the plugin\n" in err


def test_quiet_and_verbose_together_are_a_usage_error(plugin_site, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-q", "-v", "levels"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_process_other_than_rank_0_prints_warnings_only(plugin_site, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["-v", "levels"]) == 0
    err = capsys.readouterr().err
    assert err == "ft-core: warning: rank 1: warning from the plugin\n"


def test_the_cli_leaves_logging_as_it_found_it(plugin_site):
    core, plugin = logging.getLogger("ft_core"), logging.getLogger("fake_ft_logs")
    before = (core.level, list(core.handlers), plugin.level, list(plugin.handlers))
    assert main(["-q", "levels"]) == 0
    assert (core.level, list(core.handlers), plugin.level, list(plugin.handlers)) == before


def test_the_console_script_shows_plugin_lines_in_a_fresh_process(plugin_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "ft_core.cli", "levels"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the command's product\n"
    ours = [line for line in result.stderr.splitlines() if line.startswith(("[ft-core", "ft-core:"))]
    assert ours == [  # each once: one handler per logger
        "[ft-core] info from the plugin",
        "ft-core: warning: warning from the plugin",
        "[ft-core] info from core",
    ]


def test_configure_logging_adds_one_handler_per_logger_and_undoes_itself():
    logger = logging.getLogger("fake_ft_configured")
    undo_first = configure_logging(1, ["fake_ft_configured.sub:plugin"])
    undo_second = configure_logging(-1, ["fake_ft_configured"])
    assert logger.level == logging.WARNING
    assert sum(isinstance(h, ConsoleHandler) for h in logger.handlers) == 1
    undo_second()
    assert logger.level == logging.DEBUG
    undo_first()
    assert logger.level == logging.NOTSET and not logger.handlers


def test_package_names_are_top_level_packages_without_repeats():
    assert package_names(["ft_core.builtin", "ft_core_lora.plugin:x", "ft_core_lora", "acme"]) == [
        "ft_core",
        "ft_core_lora",
        "acme",
    ]


def test_trace_lines_show_whatever_the_verbosity(capsys):
    logger = trace_logger(enabled=True)
    try:
        undo = configure_logging(-1)
        logger.debug("hook called")
        undo()
        assert capsys.readouterr().err == "[ft-core trace] hook called\n"
    finally:
        logger.setLevel(logging.NOTSET)


def test_report_trainable_logs_its_line(caplog):
    import torch

    from ft_core.api.modeling import report_trainable

    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    with caplog.at_level(logging.INFO, logger="ft_core"):
        line = report_trainable(model, "demo")
    assert line == "demo: trainable params: 4 || all params: 6 || trainable%: 66.6667"
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("ft_core.api.modeling", logging.INFO, line)
    ]


def test_library_code_configures_no_logging_on_import():
    probe = (
        "import logging, ft_core.api, ft_core.engine.logs, ft_core.cli; "
        "assert not logging.getLogger('ft_core').handlers and logging.getLogger('ft_core').level == 0"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_docs_name_the_flags():
    root = Path(__file__).resolve().parents[1]
    assert "--quiet" in (root / "docs/user-guide.md").read_text(encoding="utf-8")
    assert "logging.getLogger(__name__)" in (root / "docs/plugin-author-guide.md").read_text(encoding="utf-8")
