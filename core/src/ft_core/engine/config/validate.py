"""Strict validation of a merged config: every problem is reported at once, before anything heavy runs.

Order: unknown sections; core sections against their dataclasses; component sections (each against the schema of
the component it selects); plugin-declared sections; then rules spanning sections — core's own, each selected
component's ``validate`` and every plugin's ``ft_validate_config`` hook.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ft_core.api.config import (
    CORE_SECTIONS,
    META_KEYS,
    DataSection,
    RunConfig,
    Selection,
)
from ft_core.api.errors import ConfigError, FtCoreError, did_you_mean
from ft_core.api.kinds import SECTION_KINDS
from ft_core.engine.config.llamafactory_keys import migration_hint
from ft_core.engine.config.loader import source_of
from ft_core.engine.config.typecheck import build
from ft_core.engine.plugins import Plugins


def _select(plugins: Plugins, section: str, entry: Any, path: str, problems: list[str]) -> Selection | None:
    kind = SECTION_KINDS[section]
    if not isinstance(entry, dict):
        problems.append(f"{path}: expected a name or a mapping with '{kind.selector}', got {entry!r}")
        return None
    name = entry.get(kind.selector, kind.default)
    if not isinstance(name, str) or not name:
        problems.append(f"{path}.{kind.selector}: required (the name of a registered {kind.singular})")
        return None
    try:
        registration = plugins.registration(kind.key, name)
    except FtCoreError as exc:
        problems.append(f"{path}.{kind.selector}: {exc}")
        return None
    component = registration.component
    options = build(component.options_schema, entry, path, problems, ignore=(kind.selector,))
    return Selection(
        section, kind.key, name, component, options, registration.distribution, registration.version
    )


def _selections(raw: dict[str, Any], plugins: Plugins, problems: list[str]) -> dict[str, list[Selection]]:
    selections: dict[str, list[Selection]] = {}
    for section, kind in SECTION_KINDS.items():
        value = raw.get(section)
        if value is None:
            if kind.default is None:
                continue
            value = [{kind.selector: kind.default}] if kind.many else {kind.selector: kind.default}
        if kind.many:
            if not isinstance(value, list):
                problems.append(f"{section}: expected a list, got {value!r}")
                continue
            chosen = [_select(plugins, section, v, f"{section}[{i}]", problems) for i, v in enumerate(value)]
        else:
            chosen = [_select(plugins, section, value, section, problems)]
        selections[section] = [c for c in chosen if c is not None]
    return selections


def _plugin_sections(raw: dict[str, Any], plugins: Plugins, problems: list[str]) -> dict[str, Any]:
    return {
        name: build(plugins.get("config_section", name).schema, raw.get(name), name, problems)
        for name in plugins.names("config_section")
    }


def _remote_code_problems(config: RunConfig, plugins: Plugins) -> list[str]:
    """A local model folder of a registered remote-code family (``ModelFamily.trust_remote_code``) needs
    ``model.trust_remote_code: true`` (hub ids are not looked up: nothing is downloaded to validate)."""
    model = config.model
    if model.trust_remote_code:
        return []
    from ft_core.engine.models.loader import read_model_config

    data = read_model_config(model.name_or_path)
    if data is None:
        return []
    model_type = str(data.get("model_type", ""))
    architectures = [str(a) for a in data.get("architectures") or []]
    for name in plugins.names("model_family"):
        family = plugins.get("model_family", name)
        if family.trust_remote_code and family.covers(model_type, architectures):
            return [
                f"model.trust_remote_code: {model.name_or_path!r} is a {family.description or name} model "
                f"(model_type {model_type!r}, architectures {architectures}) whose architecture transformers does "
                "not include, so the model's own Python code must run. Set model.trust_remote_code: true if you "
                "trust that code"
            ]
    return []


def _check_core_rules(config: RunConfig, plugins: Plugins, problems: list[str]) -> None:
    model, data, training = config.model, config.data, config.training
    if not model.name_or_path:
        problems.append(
            "model.name_or_path: required (a local model folder, a .gguf file or smollm2-135m-instruct)"
        )
    else:
        from ft_core.engine.models.embedded import check_model_reference

        problem = check_model_reference(model.name_or_path)
        if problem:
            problems.append(f"model.name_or_path: {problem}")
        problems.extend(_remote_code_problems(config, plugins))
    if model.attn_implementation in ("flash_attention_2", "flash_attention_3"):
        package = "flash_attn" if model.attn_implementation == "flash_attention_2" else "flash_attn_interface"
        if importlib.util.find_spec(package) is None:
            problems.append(
                f"model.attn_implementation: {model.attn_implementation} needs the {package} package (CUDA GPUs "
                "only); install it, or use sdpa"
            )
    if config.template.name != "auto":
        try:
            plugins.registration("chat_template", config.template.name)
        except FtCoreError as exc:
            problems.append(f"template.name: {exc}")
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
    if data.preprocessing_workers is not None and data.preprocessing_workers < 1:
        problems.append(
            f"data.preprocessing_workers: must be >= 1 (or null for the cores available), got "
            f"{data.preprocessing_workers}"
        )
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
        and not (Path(training.resume) / "trainer_state.json").is_file()
    ):
        problems.append(
            f"training.resume: {training.resume!r} is not a checkpoint folder (a checkpoint-<step> folder with "
            "trainer_state.json); give one, or use auto / false"
        )
    quantizer, adapter = config.one("quantization"), config.one("adapter")
    if (
        quantizer is not None
        and adapter is not None
        and quantizer.component.trains_with_adapters_only
        and adapter.component.saves_full_model
    ):
        problems.append(
            f"quantization: {quantizer.name}-quantized weights cannot be trained with adapter.method: {adapter.name}; "
            "use an adapter such as lora (QLoRA)"
        )
    stage = config.one("stage")
    if stage is not None and data.dataset:
        _check_datasets(data, plugins, stage.name, stage.component.data_kind, problems)


def _check_datasets(
    data: DataSection, plugins: Plugins, stage: str, data_kind: str, problems: list[str]
) -> None:
    """Every named dataset exists and its entry gives what the stage trains on."""
    from ft_core.engine.data.loader import check_dataset_for
    from ft_core.engine.data.registry import resolve_datasets

    for key in ("dataset", "eval_dataset"):
        names = getattr(data, key)
        if names:
            try:
                for spec in resolve_datasets(names, data.dataset_dir):
                    check_dataset_for(spec, plugins, stage, data_kind)
            except FtCoreError as exc:
                problems.append(f"data.{key}: {exc}")


def _check_components(config: RunConfig, plugins: Plugins, problems: list[str]) -> None:
    for selections in config.selections.values():
        for selection in selections:
            problems.extend(selection.component.validate(selection.options, config))
    for found in plugins.hook.ft_validate_config(config=config):
        problems.extend(found or [])


def validate(
    raw: dict[str, Any],
    plugins: Plugins,
    sources: dict[str, str] | None = None,
    config_path: str | None = None,
) -> RunConfig:
    """Validate merged config data against the core schemas, each selected component's schema and the plugins'
    sections and rules.

    Raises :class:`ConfigError` listing every problem, each labelled with the file (or ``command line``) that set
    the key — ``config_path`` for keys that nothing set.
    """
    problems: list[str] = []
    plugin_sections = plugins.names("config_section")
    known = [*CORE_SECTIONS, *SECTION_KINDS, *plugin_sections, *META_KEYS]
    for key in raw:
        if key not in known:
            hint = migration_hint(key) or did_you_mean(key, known)
            problems.append(f"{key}: unknown section.{hint} Known sections: {', '.join(known)}.")
    sections = {name: build(schema, raw.get(name), name, problems) for name, schema in CORE_SECTIONS.items()}
    selections = _selections(raw, plugins, problems)
    extra = _plugin_sections(raw, plugins, problems)
    config = None
    if all(v is not None for v in sections.values()) and all(v is not None for v in extra.values()):
        config = RunConfig(selections=selections, sections=extra, raw=raw, **sections)  # type: ignore[arg-type]
        _check_core_rules(config, plugins, problems)
        if not problems:  # component rules may assume the sections they read are valid
            _check_components(config, plugins, problems)
    if problems:
        raise ConfigError([_with_source(p, sources or {}, config_path) for p in problems])
    assert config is not None
    return config


def _with_source(problem: str, sources: dict[str, str], default: str | None) -> str:
    key = problem.split(":", 1)[0].split("[", 1)[0]
    source = source_of(sources, key) or default
    return f"{problem} [{source}]" if source else problem
