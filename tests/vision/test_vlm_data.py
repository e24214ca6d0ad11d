"""Image columns of sharegpt datasets: paths relative to the dataset folder, checked before any model loads;
every bad row is named with its file, row and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ft_core.api.config import DataSection
from ft_core.api.errors import DataError
from ft_core.engine.data.formats import ShareGptFormat, TextFormat
from ft_core.engine.data.loader import load_samples
from ft_core.engine.vision import shapes

DEMO = Path(shapes.__file__).resolve().parents[2] / "demo_data"


class Formats:
    def get(self, kind: str, name: str) -> Any:
        return {"sharegpt": ShareGptFormat(), "text": TextFormat()}[name]


def dataset(tmp_path: Path, rows: list[dict[str, Any]]) -> DataSection:
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "img" / "red.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    info = {
        "d": {
            "file_name": "d.json",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "images": "images"},
        }
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    return DataSection(dataset=["d"], dataset_dir=str(tmp_path))


def row(question: str, images: Any) -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": "red"}],
        "images": images,
    }


def test_image_paths_are_relative_to_the_dataset_folder(tmp_path: Path) -> None:
    data = dataset(tmp_path, [row("<image>Colour?", ["img/red.png"]), row("No image here", [])])
    with_image, without = load_samples(["d"], data, Formats(), "conversation", seed=0)
    assert with_image.images == [str(tmp_path / "img" / "red.png")]
    assert without.images == []


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [row("Colour?", ["img/red.png"])],
            r"d\.json: row 1: images: 0 <image> placeholder\(s\) in the messages but 1 image\(s\)",
        ),
        (
            [row("ok", []), row("<image><image>Colours?", ["img/red.png"])],
            r"d\.json: row 2: images: 2 <image> placeholder\(s\) in the messages but 1 image",
        ),
        (
            [row("<image>Colour?", ["img/missing.png"])],
            r"d\.json: row 1: images: image 1: no such file: .*img/missing\.png",
        ),
        (
            [row("<image>Colour?", ["img/broken.png"])],
            r"d\.json: row 1: images: image 1: cannot read .*img/broken\.png as an image",
        ),
        (
            [row("<image>Colour?", [3])],
            r"d\.json: row 1: images: expected a list of image file paths, got \[3\]",
        ),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, rows: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        load_samples(["d"], dataset(tmp_path, rows), Formats(), "conversation", seed=0)


def test_the_demo_set_loads(tmp_path: Path) -> None:
    samples = load_samples(
        ["vlm_shapes_demo"], DataSection(dataset=["vlm_shapes_demo"]), Formats(), "conversation", seed=0
    )
    assert len(samples) == 24
    assert all(len(s.images) == 1 and Path(s.images[0]).is_file() for s in samples)
    assert {s.messages[-1].content for s in samples} >= {"a red circle", "a blue square", "a yellow triangle"}


def test_the_generator_makes_the_committed_demo_set(tmp_path: Path) -> None:
    written = shapes.write(tmp_path)
    assert json.loads(written.read_text()) == json.loads((DEMO / "shapes_demo.json").read_text())
    for name, *_ in shapes.rows():
        made, committed = Image.open(tmp_path / name), Image.open(DEMO / name)
        assert made.tobytes() == committed.convert(made.mode).tobytes(), name


def test_a_red_circle_is_red_and_round() -> None:
    image = shapes.draw("circle", "red", (8, 8, 56, 56))
    assert image.getpixel((32, 32)) == shapes.COLOURS["red"]
    assert image.getpixel((9, 9)) == (255, 255, 255)  # outside the circle, inside its box
