"""Strict validation of a merged config: every problem is reported at once, before anything heavy runs."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_core.config.llamafactory_keys import migration_hint
from ft_core.config.schema import (
    COMPONENT_SECTIONS,
    CORE_SECTIONS,
    META_KEYS,
    DataSection,
    ModelSection,
    Selection,
    TemplateSection,
    TrainingSection,
)
from ft_core.config.typecheck import build
from ft_core.errors import ConfigError, FtCoreError, did_you_mean
from ft_core.plugins import Plugins


@dataclass
class RunConfig:
    """A validated configuration: typed core sections and the resolved components."""

    model: ModelSection
    template: TemplateSection
    data: DataSection
    training: TrainingSection
    selections: dict[str, list[Selection]]
    raw: dict[str, Any] = field(default_factory=dict)

    def one(self, section: str) -> Selection | None:
        """The single component selected by ``section`` (``stage``, ``adapter``, ...), if any."""
        chosen = self.selections.get(section) or []
        return chosen[0] if chosen else None

    def many(self, section: str) -> list[Selection]:
        return list(self.selections.get(section) or [])

    @property
    def stage(self) -> Selection:
        stage = self.one("stage")
        assert stage is not None
        return stage


def _select(plugins: Plugins, section: str, entry: Any, path: str, problems: list[str]) -> Selection | None:
    spec = COMPONENT_SECTIONS[section]
    if not isinstance(entry, dict):
        problems.append(f"{path}: expected a name or a mapping with '{spec.selector}', got {entry!r}")
        return None
    name = entry.get(spec.selector, spec.default)
    if not isinstance(name, str) or not name:
        problems.append(f"{path}.{spec.selector}: required (the name of a registered component)")
        return None
    try:
        registration = plugins.registration(spec.kind, name)
    except FtCoreError as exc:
        problems.append(f"{path}.{spec.selector}: {exc}")
        return None
    component = registration.component
    options = build(component.options_schema, entry, path, problems, ignore=(spec.selector,))
    return Selection(
        section, spec.kind, name, component, options, registration.distribution, registration.version
    )


def _check_combinations(config: RunConfig, plugins: Plugins, problems: list[str]) -> None:
    model, data, training = config.model, config.data, config.training
    if not model.name_or_path:
        problems.append(
            "model.name_or_path: required (a local model folder, a .gguf file or smollm2-135m-instruct)"
        )
    else:
        from ft_core.models.embedded import check_model_reference

        problem = check_model_reference(model.name_or_path)
        if problem:
            problems.append(f"model.name_or_path: {problem}")
    if model.attn_implementation in ("flash_attention_2", "flash_attention_3"):
        package = "flash_attn" if model.attn_implementation == "flash_attention_2" else "flash_attn_interface"
        if importlib.util.find_spec(package) is None:
            problems.append(
                f"model.attn_implementation: {model.attn_implementation} needs the {package} package (CUDA GPUs "
                "only); install it, or use sdpa"
            )
    if not training.output_dir:
        problems.append("training.output_dir: required (the folder for checkpoints and results)")
    if not data.dataset:
        problems.append("data.dataset: required (one or more dataset names)")
    if data.cutoff_len < 8:
        problems.append(f"data.cutoff_len: must be at least 8, got {data.cutoff_len}")
    if data.val_size < 0 or (data.val_size >= 1 and not float(data.val_size).is_integer()):
        problems.append(f"data.val_size: a fraction in (0, 1) or a whole row count, got {data.val_size}")
    if data.max_samples is not None and data.max_samples < 1:
        problems.append(f"data.max_samples: must be >= 1, got {data.max_samples}")
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training, key) < 1:
            problems.append(f"training.{key}: must be >= 1, got {getattr(training, key)}")
    if training.learning_rate <= 0:
        problems.append(f"training.learning_rate: must be > 0, got {training.learning_rate}")
    if training.max_steps <= 0 and training.num_train_epochs <= 0:
        problems.append("training: set max_steps > 0 or num_train_epochs > 0")
    if training.save_steps < 1 or training.logging_steps < 1:
        problems.append("training.save_steps and training.logging_steps: must be >= 1")
    if training.eval_steps is not None and not (data.val_size > 0 or data.eval_dataset):
        problems.append("training.eval_steps: needs evaluation data: set data.val_size or data.eval_dataset")
    if training.precision == "fp16" and training.use_cpu:
        problems.append("training.precision: fp16 needs a GPU; use fp32 or bf16 with use_cpu: true")
    if (
        str(training.resume).lower() not in ("auto", "false", "true", "no")
        and not Path(training.resume).is_dir()
    ):
        problems.append(
            f"training.resume: checkpoint folder {training.resume!r} does not exist (or use auto / false)"
        )
    adapter = config.one("adapter")
    if config.one("quantization") is not None and adapter is not None and adapter.component.saves_full_model:
        problems.append(
            f"quantization: quantized weights cannot be trained with adapter.method: {adapter.name}; "
            "use an adapter such as lora (QLoRA)"
        )
    stage = config.one("stage")
    if stage is not None and data.dataset:
        _check_datasets(data, plugins, stage.component.data_kind, problems)


def _check_datasets(data: DataSection, plugins: Plugins, produces: str, problems: list[str]) -> None:
    """Every named dataset exists and its format gives what the stage trains on (conversations or text)."""
    from ft_core.data.loader import format_for
    from ft_core.data.spec import resolve_datasets

    for key in ("dataset", "eval_dataset"):
        names = getattr(data, key)
        if names:
            try:
                for spec in resolve_datasets(names, data.dataset_dir):
                    format_for(spec, plugins, produces)
            except FtCoreError as exc:
                problems.append(f"data.{key}: {exc}")


def validate(raw: dict[str, Any], plugins: Plugins, sources: dict[str, str] | None = None) -> RunConfig:
    """Validate merged config data against the core schemas and each selected component's schema.

    Raises :class:`ConfigError` listing every problem (with the file that set each key).
    """
    problems: list[str] = []
    known = [*CORE_SECTIONS, *COMPONENT_SECTIONS, *META_KEYS]
    for key in raw:
        if key not in known:
            hint = migration_hint(key) or did_you_mean(key, known)
            problems.append(f"{key}: unknown section.{hint} Known sections: {', '.join(known)}.")
    sections = {name: build(schema, raw.get(name), name, problems) for name, schema in CORE_SECTIONS.items()}
    selections: dict[str, list[Selection]] = {}
    for section, spec in COMPONENT_SECTIONS.items():
        value = raw.get(section)
        if value is None:
            if spec.default is None:
                continue
            value = [{spec.selector: spec.default}] if spec.many else {spec.selector: spec.default}
        if spec.many:
            if not isinstance(value, list):
                problems.append(f"{section}: expected a list, got {value!r}")
                continue
            chosen = [_select(plugins, section, v, f"{section}[{i}]", problems) for i, v in enumerate(value)]
        else:
            chosen = [_select(plugins, section, value, section, problems)]
        selections[section] = [c for c in chosen if c is not None]
    config = None
    if all(v is not None for v in sections.values()):
        config = RunConfig(selections=selections, raw=raw, **sections)  # type: ignore[arg-type]
        _check_combinations(config, plugins, problems)
    if problems:
        raise ConfigError([_with_source(p, sources or {}) for p in problems])
    assert config is not None
    return config


def _with_source(problem: str, sources: dict[str, str]) -> str:
    from ft_core.config.loader import source_of

    key = problem.split(":", 1)[0].split("[", 1)[0]
    source = source_of(sources, key)
    return f"{problem} [{source}]" if source else problem
