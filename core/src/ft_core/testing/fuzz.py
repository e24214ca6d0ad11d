"""Property-based (Hypothesis) testing helpers: a settings profile with a fast reproducible CI count and a long
release mode, strategies of hostile values, and the CLI contract every generated input must meet.

``FT_CORE_FUZZ=long`` raises each property test to ``FT_CORE_FUZZ_EXAMPLES`` examples (default 2,000) drawn from
a random seed; by default a test runs the handful of examples it asks for, derandomized (the same every run).

Needs ``hypothesis`` (ft-core's ``test`` extra); ``ft_core.testing`` itself does not import this module.
"""

from __future__ import annotations

import contextlib
import io
import os
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: ``FT_CORE_FUZZ=long``: the release mode.
LONG = os.environ.get("FT_CORE_FUZZ", "").lower() == "long"
#: Examples per property test in the long mode.
LONG_EXAMPLES = int(os.environ.get("FT_CORE_FUZZ_EXAMPLES", "2000"))


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of a property test: ``examples`` derandomized examples in CI, ``LONG_EXAMPLES`` random
    ones with ``FT_CORE_FUZZ=long``. No deadline (a first example pays for imports), no example database (CI
    stays reproducible and the tree clean)."""
    return settings(
        max_examples=LONG_EXAMPLES if LONG else examples,
        derandomize=not LONG,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------------------------- hostile values
#: Text the parsers meet in the wild: unicode planes, control and bidi characters, YAML and Jinja syntax.
NASTY_TEXT: tuple[str, ...] = (
    "",
    " ",
    "\t",
    "\n",
    "\x00",
    "\ufeff",
    "\u202e",
    "ünïcödé",
    "日本語",
    "🦙🔥",
    "null",
    "~",
    "yes",
    "off",
    "-1",
    "1e400",
    "nan",
    ".inf",
    "0x1F",
    "{{ 7 * 7 }}",
    "{% raise %}",
    "<|im_start|>",
    "<image>",
    "..",
    "../../etc/passwd",
    "/",
    "a/b",
    "C:\\x",
    "'",
    '"',
    "[",
    "{",
    "&anchor",
    "*alias",
    "!!python/object:os.system",
    "%YAML 1.2",
)

#: OmegaConf interpolations: working ones, missing keys, unset environment variables, syntax errors, cycles.
INTERPOLATIONS: tuple[str, ...] = (
    "${model.name_or_path}",
    "${data.cutoff_len}",
    "${training.seed}",
    "${training.learning_rate}",
    "${nope}",
    "${nope.deeper}",
    "${model}",
    "${data.dataset}",
    "${oc.env:FT_CORE_FUZZ_SURELY_UNSET}",
    "${oc.env:FT_CORE_FUZZ_SURELY_UNSET,7}",
    "${oc.env:HOME}",
    "${oc.decode:'[1, 2'}",
    "${oc.decode:'{a: 1}'}",
    "${oc.create:{a: 1}}",
    "${oc.select:nope.x,3}",
    "${oc.dict.keys:model}",
    "${no_such_resolver:1}",
    "${",
    "${}",
    "${.}",
    "${..x}",
    "${a.${b}}",
    "\\${escaped}",
    "x ${training.seed} y",
    "${training.${model.name_or_path}}",
)


def extreme_numbers() -> st.SearchStrategy[Any]:
    """Integers and floats at and past every limit a config or a request meets."""
    return st.one_of(
        st.sampled_from(
            [0, -1, 1, 2**31, -(2**31), 2**63, 2**64 + 1, 10**30, -(10**30), 10**400, 0.0, -0.0, 1e-320]
        ),
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324]),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
    )


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode text (any plane, surrogates excepted), hostile snippets and interpolations."""
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.sampled_from(INTERPOLATIONS),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size),
        st.text(string.printable, max_size=max_size),
    )


def scalars(max_text: int = 40) -> st.SearchStrategy[Any]:
    """Any YAML / JSON scalar, hostile ones favoured."""
    return st.one_of(st.none(), st.booleans(), extreme_numbers(), hostile_text(max_text))


def nested(depth: int = 4, max_text: int = 40) -> st.SearchStrategy[Any]:
    """Scalars, lists and mappings nested up to ``depth`` levels (keys of any scalar type)."""
    return st.recursive(
        scalars(max_text),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(hostile_text(12), st.integers(-3, 3)), inner, max_size=4),
        ),
        max_leaves=12 if depth <= 4 else 40,
    )


def deep(levels: int) -> Any:
    """A list nested ``levels`` deep (parsers that recurse meet their limit)."""
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def hostile_values() -> st.SearchStrategy[Any]:
    """What a fuzzed key is set to: scalars, containers, deep nesting, huge strings."""
    return st.one_of(
        scalars(),
        nested(),
        st.sampled_from([deep(33), deep(90), {"a": {"b": {"c": {"d": {"e": [{}]}}}}}, [[]], [{}], {}]),
        st.integers(1, 5).map(lambda k: "x" * (10**k)),
    )


# --------------------------------------------------------------------------------------------- the contract
@dataclass
class CliResult:
    """What one in-process ``ft-core`` call returned and printed."""

    status: int
    stdout: str
    stderr: str

    def check(self, *names: str) -> None:
        """The contract: exit 0, or exit 2 with ``ft-core: error:`` and a message naming one of ``names`` (the file,
        the row, the key); never a traceback."""
        assert "Traceback (most recent call last)" not in self.stderr + self.stdout, self.stderr
        assert self.status in (0, 2), f"exit status {self.status}:\n{self.stderr}"
        if self.status == 2:
            assert "ft-core: error:" in self.stderr, self.stderr
            if names:
                assert any(name in self.stderr for name in names), (
                    f"the message names none of {names}:\n{self.stderr}"
                )


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str]) -> CliResult:
    """``main(ARGV)`` (:func:`ft_core.cli.main`) in this process, its output captured; an exception escaping it fails
    the caller's test as it is (it would be a traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code if isinstance(exc.code, int) else 2
    return CliResult(status, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def working_directory(path: str | Path) -> Iterator[None]:
    """Run the block in ``path`` (relative paths a fuzzed config names land there), then return."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def files_under(path: str | Path) -> set[str]:
    """Every file and folder below ``path`` (relative), to check that a command wrote nothing."""
    root = Path(path)
    return {str(p.relative_to(root)) for p in root.rglob("*")}
