"""Rewrite a wheel without some of its files, so that the wheels a GPU call carries fit its size limit.

Usage: python tools/bench/slim_wheel.py WHEEL GLOB...     (in place; RECORD is rewritten to match)

    python tools/bench/slim_wheel.py .whl-unsloth/unsloth-*.whl 'studio/*' 'unsloth_cli/*'   # 28.6 MB -> ~2 MB
    python tools/bench/slim_wheel.py .whl-lf/bitsandbytes-*.whl 'bitsandbytes/libbitsandbytes_cuda1[12]*' \
        'bitsandbytes/libbitsandbytes_rocm*' 'bitsandbytes/libbitsandbytes_xpu*'

The first drops Unsloth's web UI and CLI (training never imports them); the second keeps bitsandbytes' CPU and
CUDA 13 libraries only (torch cu130 loads libbitsandbytes_cuda130.so), 43 MB -> 7 MB.
"""

from __future__ import annotations

import fnmatch
import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, patterns: list[str]) -> tuple[int, int]:
    """Drop the members matching any of ``patterns`` (and their RECORD lines); returns (kept, dropped)."""
    with zipfile.ZipFile(wheel) as source:
        members = source.infolist()
        dropped = {m.filename for m in members if any(fnmatch.fnmatch(m.filename, p) for p in patterns)}
        record = next(m.filename for m in members if m.filename.endswith(".dist-info/RECORD"))
        data = {m.filename: source.read(m) for m in members if m.filename not in dropped}
    lines = data[record].decode().splitlines()
    data[record] = ("\n".join(line for line in lines if line.split(",")[0] not in dropped) + "\n").encode()
    temporary = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, content in data.items():
            target.writestr(name, content)
    temporary.replace(wheel)
    return len(data), len(dropped)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    kept, dropped = slim(Path(argv[0]), argv[1:])
    size = Path(argv[0]).stat().st_size / 2**20
    print(f"{argv[0]}: kept {kept} files, dropped {dropped}; now {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
