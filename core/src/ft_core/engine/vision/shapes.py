"""The vision-language demo set: rendered shapes in colours with their captions ("a red circle"), made here.

``python -m ft_core.engine.vision.shapes FOLDER`` writes the PNGs and ``shapes_demo.json`` (sharegpt with an
``images`` column) into FOLDER; the built-in demo set ``vlm_shapes_demo`` is its output, committed under
``ft_core/demo_data/``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 70, 220), "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")
QUESTIONS = ("<image>What is in the picture?", "<image>Describe the image.", "What shape do you see? <image>")
SIZE = 64
IMAGE_FOLDER = "shapes"


def draw(shape: str, colour: str, box: tuple[int, int, int, int], size: int = SIZE) -> Any:
    """A ``size`` x ``size`` white PIL image with one filled ``shape`` of ``colour`` inside ``box``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    fill = COLOURS[colour]
    x0, y0, x1, y1 = box
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return image


def rows(variants: int = 2, seed: int = 0) -> list[tuple[str, str, str, tuple[int, int, int, int], str]]:
    """``(file name, shape, colour, box, question)`` of every image: each shape in each colour ``variants`` times,
    at a random place and size."""
    rng = random.Random(seed)
    result = []
    for shape in SHAPES:
        for colour in COLOURS:
            for variant in range(variants):
                side = rng.randint(SIZE // 3, SIZE - 12)
                x0, y0 = rng.randint(4, SIZE - 4 - side), rng.randint(4, SIZE - 4 - side)
                question = QUESTIONS[rng.randrange(len(QUESTIONS))]
                name = f"{IMAGE_FOLDER}/{colour}_{shape}_{variant}.png"
                result.append((name, shape, colour, (x0, y0, x0 + side, y0 + side), question))
    return result


def write(folder: str | Path, variants: int = 2, seed: int = 0) -> Path:
    """Write the images and ``shapes_demo.json`` into ``folder``; returns the json's path."""
    folder = Path(folder)
    (folder / IMAGE_FOLDER).mkdir(parents=True, exist_ok=True)
    records = []
    for name, shape, colour, box, question in rows(variants, seed):
        draw(shape, colour, box).save(folder / name, optimize=True)
        records.append(
            {
                "conversations": [
                    {"from": "human", "value": question},
                    {"from": "gpt", "value": f"a {colour} {shape}"},
                ],
                "images": [name],
            }
        )
    path = folder / "shapes_demo.json"
    path.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write(args.folder, args.variants, args.seed))


if __name__ == "__main__":
    main()
