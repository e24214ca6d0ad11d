"""Console logging: the ``ft_core`` logger hierarchy, the console handler and the CLI's set-up.

Convention: every module logs to ``logging.getLogger(__name__)``: core under ``ft_core``, a plugin under its own
package (``ft_core_<name>``, ``ft_template_<name>`` or any other name). Levels: ``info`` for progress lines,
``warning`` for problems the user should see, ``debug`` for detail (shown with ``ft-core --verbose``); hook and
registration traces go to the ``ft_core.trace`` logger (:func:`trace_logger`).

Library code never configures logging on import. :func:`configure_logging` (called by the CLI, and by the
``ft_core.testing`` pytest plugin) gives ``ft_core`` and each named plugin package logger its level and one
:class:`ConsoleHandler`; other libraries' loggers are left alone. The handler writes ``[ft-core] message`` for
info, ``ft-core: warning: message`` / ``ft-core: error: message`` for warnings and errors, to the current
``sys.stderr``; below warning only on the main process (rank 0) of a multi-process run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from ft_core.api.context import ProcessInfo

#: The top-level logger of ft-core itself.
ROOT_LOGGER = "ft_core"
#: Hook-call and registration traces (``FT_CORE_TRACE=1``): shown whatever the verbosity once switched on.
TRACE_LOGGER = "ft_core.trace"
#: ``configure_logging`` verbosities: ``--quiet``, the default, ``--verbose``.
QUIET, NORMAL, VERBOSE = -1, 0, 1


class ConsoleFormatter(logging.Formatter):
    """``[ft-core] message`` (info), ``[ft-core debug] logger: message``, ``[ft-core trace] message``,
    ``ft-core: warning: message`` and ``ft-core: error: message``; warnings of a rank other than 0 name it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            rank = ProcessInfo.current().rank
            where = f"rank {rank}: " if rank else ""
            kind = "error" if record.levelno >= logging.ERROR else "warning"
            line = f"ft-core: {kind}: {where}{message}"
        elif record.name == TRACE_LOGGER or record.name.startswith(TRACE_LOGGER + "."):
            line = f"[ft-core trace] {message}"
        elif record.levelno >= logging.INFO:
            line = f"[ft-core] {message}"
        else:
            line = f"[ft-core debug] {record.name}: {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class MainProcessFilter(logging.Filter):
    """Lets records below ``WARNING`` through on the main process (rank 0) only; warnings from every rank."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or ProcessInfo.current().is_main_process


class ConsoleHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is *when the record is emitted* (so a replaced stream, such as
    pytest's ``capsys`` / ``capfd``, receives it), formatted by :class:`ConsoleFormatter`."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(ConsoleFormatter())
        self.addFilter(MainProcessFilter())

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the handler always writes to the current ``sys.stderr``."""


def level_for(verbosity: int) -> int:
    """The logging level of a verbosity: ``WARNING`` when quiet (< 0), ``INFO`` by default, ``DEBUG`` when > 0."""
    if verbosity < 0:
        return logging.WARNING
    return logging.DEBUG if verbosity > 0 else logging.INFO


def package_names(modules: Iterable[str]) -> list[str]:
    """Top-level package names of modules or entry-point values (``"ft_core_lora.plugin:x"`` -> ``ft_core_lora``),
    in order, without repeats."""
    return list(dict.fromkeys(m.split(":", 1)[0].split(".", 1)[0] for m in modules if m))


def configure_logging(verbosity: int = NORMAL, packages: Iterable[str] = ()) -> Callable[[], None]:
    """Show ft-core's log lines, and those of ``packages`` (the loaded plugins' top-level packages), on stderr.

    ``verbosity`` < 0 (``--quiet``): warnings and errors only; 0: info lines too; > 0 (``--verbose``): debug lines
    too. Each logger gets the level and one :class:`ConsoleHandler` (a second call changes the level and adds
    packages, never a second handler). Returns a function that puts back what this call changed (levels and
    handlers), so an in-process call such as a test leaves no trace.
    """
    level = level_for(verbosity)
    saved: list[tuple[logging.Logger, int, list[logging.Handler]]] = []
    for name in package_names([ROOT_LOGGER, *packages]):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, list(logger.handlers)))
        logger.setLevel(level)
        if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
            logger.addHandler(ConsoleHandler())

    def restore() -> None:
        for logger, old_level, old_handlers in reversed(saved):
            logger.setLevel(old_level)
            for handler in [h for h in logger.handlers if h not in old_handlers]:
                logger.removeHandler(handler)

    return restore


def trace_logger(enabled: bool = False) -> logging.Logger:
    """The ``ft_core.trace`` logger; ``enabled`` (``FT_CORE_TRACE=1`` or ``trace=True``) sets it to ``DEBUG``, so
    its lines show whatever the verbosity. Trace lines are logged with ``.debug``."""
    logger = logging.getLogger(TRACE_LOGGER)
    if enabled:
        logger.setLevel(logging.DEBUG)
    return logger
