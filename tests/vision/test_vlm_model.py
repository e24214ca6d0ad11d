"""Vision-language models: LoRA ``targets: all`` adapts the language model only; the vision tower and projector
stay frozen unless the config says otherwise (whole-model adapters)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_vlm

import ft_core_llava
import ft_core_qwen_vl
from ft_core.api import FtCoreError, ModelSection, adapter_target_modules, linear_module_names
from ft_core.engine.vision.model import apply_vision_freezing
from ft_core_full import FullAdapter
from ft_core_lora import LoraAdapter, LoraOptions


def load(folder: Path) -> Any:
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(folder)


@pytest.fixture(scope="module", name="llava_dir")
def _llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_vlm.llava(tmp_path_factory.mktemp("llava"), ft_core_llava.LLAVA)


def test_lora_all_targets_the_language_model_only(llava_dir: Path) -> None:
    family = ft_core_llava.LLAVA_FAMILY
    model = load(llava_dir)
    names = linear_module_names(model, family)
    assert names == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = LoraAdapter().apply(model, LoraOptions(rank=2), family)
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert adapted and all(".language_model." in n for n in adapted)
    assert len(adapted) == 2 * 7  # every projection of both decoder layers
    assert not any(p.requires_grad for n, p in peft_model.named_parameters() if "vision_tower" in n)


def test_explicit_targets_skip_the_vision_tower(llava_dir: Path) -> None:
    """CLIP's attention layers are also called q_proj / k_proj / v_proj: a name alone would adapt them."""
    family = ft_core_llava.LLAVA_FAMILY
    pattern = adapter_target_modules(["q_proj", "v_proj"], family)
    peft_model = LoraAdapter().apply(
        load(llava_dir), LoraOptions(rank=2, targets=["q_proj", "v_proj"]), family
    )
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert isinstance(pattern, str) and len(adapted) == 4 and all(".language_model." in n for n in adapted)
    assert adapter_target_modules(["q_proj"], None) == ["q_proj"]  # text models: plain names


@pytest.mark.parametrize(("tower", "projector"), [(True, True), (True, False), (False, False)])
def test_whole_model_adapters_freeze_as_configured(llava_dir: Path, tower: bool, projector: bool) -> None:
    model = FullAdapter().apply(load(llava_dir), None, ft_core_llava.LLAVA_FAMILY)
    section = ModelSection(
        name_or_path=str(llava_dir), freeze_vision_tower=tower, freeze_multi_modal_projector=projector
    )
    apply_vision_freezing(model, ft_core_llava.LLAVA_FAMILY, section, FullAdapter())
    trains = {n.split(".")[1]: p.requires_grad for n, p in model.named_parameters() if n.startswith("model.")}
    assert trains == {
        "vision_tower": not tower,
        "multi_modal_projector": not projector,
        "language_model": True,
    }


def test_qwen_merger_is_the_projector_inside_the_tower(tmp_path: Path) -> None:
    """Qwen2-VL's projector (``visual.merger``) sits inside the vision tower: it follows its own switch."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm.qwen2_vl(tmp_path, ft_core_qwen_vl.QWEN2_VL))
    model.requires_grad_(True)
    section = ModelSection(name_or_path="x", freeze_vision_tower=True, freeze_multi_modal_projector=False)
    apply_vision_freezing(model, ft_core_qwen_vl.QWEN2_VL_FAMILY, section, FullAdapter())
    visual = {n: p.requires_grad for n, p in model.named_parameters() if n.startswith("model.visual.")}
    assert visual and all(v == n.startswith("model.visual.merger.") for n, v in visual.items())


def test_lora_with_an_unfrozen_projector_is_refused(llava_dir: Path) -> None:
    section = ModelSection(name_or_path=str(llava_dir), freeze_multi_modal_projector=False)
    with pytest.raises(
        FtCoreError,
        match=r"model\.freeze_multi_modal_projector: false needs a whole-model adapter.*modules_to_save",
    ):
        apply_vision_freezing(load(llava_dir), ft_core_llava.LLAVA_FAMILY, section, LoraAdapter())


def test_lora_with_an_unfrozen_tower_is_refused_at_validation(llava_dir: Path, make_config) -> None:
    """Before any weights load: the family is read from config.json."""
    from ft_core.api.errors import ConfigError
    from ft_core.bootstrap import load_plugins
    from ft_core.engine.config.loader import load_config
    from ft_core.engine.config.validate import validate

    path = make_config(model={"name_or_path": str(llava_dir), "freeze_vision_tower": False})
    raw, sources = load_config(path)
    with pytest.raises(
        ConfigError, match=r"model\.freeze_vision_tower: false needs a whole-model adapter.*\(rule "
    ):
        validate(raw, load_plugins(), sources, str(path))
    full = make_config("full.yaml", model={"name_or_path": str(llava_dir), "freeze_vision_tower": False},
                       adapter={"method": "full"})  # fmt: skip
    raw, sources = load_config(full)
    assert validate(raw, load_plugins(), sources, str(full)).model.freeze_vision_tower is False
