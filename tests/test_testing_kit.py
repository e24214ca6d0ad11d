"""The plugin authors' conformance checks catch what they claim to catch."""

from __future__ import annotations

from typing import Any

import pytest

from ft_core.api import Conversation, Message, NoOptions, OptimizerFactory, TrainingStage
from ft_core.testing import make_encoder
from ft_core.testing.conformance_optimizers import check_optimizer
from ft_core.testing.conformance_stages import check_stage


class _Stage(TrainingStage[NoOptions]):
    def __init__(self, labels_short: bool = False, pack: bool = False) -> None:
        self.labels_short = labels_short
        self.pack = pack

    def preprocess(self, samples: list[Any], encoder: Any, options: Any) -> list[dict[str, Any]]:
        rows = [encoder.encode_conversation(s) for s in samples]
        if self.pack:  # joins neighbouring rows: not chunk-invariant
            rows = [{k: a[k] + b[k] for k in a} for a, b in zip(rows[::2], rows[1::2], strict=False)]
        if self.labels_short:
            rows = [{**r, "labels": r["labels"][:-1]} for r in rows]
        return rows


def _samples() -> list[Conversation]:
    return [Conversation([Message("user", f"q{i}?"), Message("assistant", f"a{i}.")]) for i in range(6)]


def test_check_stage_passes_a_sound_stage_and_catches_broken_ones(tiny_tokenizer):
    encoder = make_encoder(tiny_tokenizer, cutoff_len=64)
    assert len(check_stage(_Stage(), NoOptions(), encoder, _samples())) == 6
    with pytest.raises(AssertionError, match="labels and input_ids differ"):
        check_stage(_Stage(labels_short=True), NoOptions(), encoder, _samples())
    with pytest.raises(AssertionError, match="two halves"):
        check_stage(_Stage(pack=True), NoOptions(), make_encoder(tiny_tokenizer, cutoff_len=512), _samples())


class _AllParameters(OptimizerFactory[NoOptions]):
    """Wrong on purpose: optimizes frozen parameters too."""

    def param_groups(self, options, model, default_groups, args):
        return [{"params": list(model.parameters())}]

    def create(self, options, param_groups, args):
        import torch

        return torch.optim.SGD(param_groups, lr=args.learning_rate)


class _Sgd(_AllParameters):
    def param_groups(self, options, model, default_groups, args):
        return None


def test_check_optimizer_catches_frozen_parameters_in_the_groups(tiny_model):
    tiny_model.requires_grad_(False)
    tiny_model.lm_head.requires_grad_(True)
    check_optimizer(_Sgd(), NoOptions(), tiny_model)
    with pytest.raises(AssertionError, match="frozen"):
        check_optimizer(_AllParameters(), NoOptions(), tiny_model)


def test_load_quantized_lets_the_quantizer_place_the_model(tiny_model_dir):
    from ft_core.api import Quantizer
    from ft_core.testing.quantizers import load_quantized

    class Placing(Quantizer[Any]):
        def __init__(self, kwargs: dict[str, Any]) -> None:
            self.kwargs = kwargs

        def load_kwargs(self, options: Any, model_config: Any) -> dict[str, Any]:
            return dict(self.kwargs)

    # a device map of the backend's own is used as is (it used to clash with the forced CPU one)
    model = load_quantized(Placing({"device_map": "cpu"}), tiny_model_dir, None)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    # none: the whole model on the CPU
    model = load_quantized(Placing({}), tiny_model_dir, None)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
