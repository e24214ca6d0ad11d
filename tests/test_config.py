"""Config loading (YAML, includes, overrides) and strict validation."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

from ft_core.api.errors import ConfigError
from ft_core.bootstrap import load_plugins
from ft_core.engine.config.loader import load_config
from ft_core.engine.config.validate import validate

BASE = """
model:
  name_or_path: {model}
data:
  dataset: identity
  cutoff_len: 64
adapter:
  method: lora
  rank: 4
training:
  output_dir: {out}
  max_steps: 2
"""


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(strict=True)


def _validate(path, plugins, overrides=()):
    raw, sources = load_config(path, list(overrides))
    return validate(raw, plugins, sources, str(path))


@pytest.fixture
def write(tmp_path):
    def write(name: str, text: str):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def base_text(tiny_model_dir, tmp_path):
    return BASE.format(model=tiny_model_dir, out=tmp_path / "run")


def test_valid_config_resolves_every_component(plugins, write, base_text):
    config = _validate(write("c.yaml", base_text), plugins)
    assert config.data.cutoff_len == 64
    assert config.one("adapter").name == "lora"
    assert config.one("adapter").options.rank == 4
    assert config.stage.name == "sft", "stage defaults to sft"
    assert config.one("optimizer").name == "adamw"


def test_all_problems_reported_at_once_with_paths_and_did_you_mean(plugins, write, base_text):
    text = (
        base_text.replace("cutoff_len: 64", "cutof_len: 64\n  val_size: lots")
        + "\noptimizer:\n  name: adamv\n"
    )
    text = text.replace("rank: 4", "rnak: 4")
    path = write("c.yaml", text)
    with pytest.raises(ConfigError) as error:
        _validate(path, plugins)
    message = str(error.value)
    assert "data.cutof_len: unknown key. Did you mean 'cutoff_len'?" in message
    assert "data.val_size: expected a number, got 'lots'" in message
    assert "adapter.rnak: unknown key. Did you mean 'rank'?" in message
    assert "optimizer.name: unknown optimizer 'adamv'. Did you mean 'adamw'?" in message
    assert str(path) in message, "each problem names the file that set the key"
    assert len(error.value.problems) == 4


def test_unknown_section_and_wrong_literal(plugins, write, base_text):
    path = write("c.yaml", base_text + "trainig:\n  seed: 1\ntemplate:\n  check: loud\n")
    with pytest.raises(ConfigError) as error:
        _validate(path, plugins)
    message = str(error.value)
    assert "trainig: unknown section. Did you mean 'training'?" in message
    assert "template.check: expected one of 'strict' | 'warn' | 'off', got 'loud'" in message


def test_invalid_combinations(plugins, write, base_text):
    text = base_text.replace(
        "max_steps: 2", "max_steps: 2\n  eval_steps: 5\n  use_cpu: true\n  precision: fp16"
    )
    path = write("c.yaml", text.replace("dataset: identity", "dataset: identty"))
    with pytest.raises(ConfigError) as error:
        _validate(path, plugins)
    message = str(error.value)
    assert "training.eval_steps: needs evaluation data" in message
    assert "training.precision: fp16 needs a GPU" in message
    assert "identty" in message and "identity" in message


def test_includes_and_overrides_merge_in_order(plugins, write, base_text):
    write("base.yaml", base_text)
    path = write("child.yaml", "include: base.yaml\ndata:\n  cutoff_len: 32\n")
    raw, sources = load_config(path, ["training.max_steps=7", "adapter=full"])
    config = validate(raw, plugins, sources)
    assert config.data.cutoff_len == 32
    assert config.training.max_steps == 7
    assert config.one("adapter").name == "full"
    assert sources["data.cutoff_len"] == str(path)
    assert sources["training.max_steps"] == "command line"
    assert sources["model.name_or_path"].endswith("base.yaml")


def test_include_cycle_and_missing_file(write):
    write("a.yaml", "include: b.yaml\n")
    write("b.yaml", "include: a.yaml\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(write("a.yaml", "include: b.yaml\n"))
    with pytest.raises(ConfigError, match=r"config file not found: .*nope.yaml \(included from"):
        load_config(write("c.yaml", "include: nope.yaml\n"))


def test_yaml_syntax_error_names_line(write):
    with pytest.raises(ConfigError, match=r"line 2, column \d+: invalid YAML"):
        load_config(write("bad.yaml", "model:\n  name_or_path: a: b\n"))


def test_bad_override_form(write, base_text):
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(write("c.yaml", base_text), ["training.max_steps"])


def test_quantized_full_training_is_rejected(plugins, write, base_text):
    import types

    from ft_core.api.components import Quantizer
    from ft_core.api.hookspecs import hookimpl

    module = types.ModuleType("q")
    module.ft_register_quantizers = hookimpl(lambda register: register("fake4", Quantizer()))
    with_quantizer = load_plugins(strict=True, extra=[(module, "fake-quant")])
    path = write(
        "c.yaml", base_text.replace("method: lora\n  rank: 4", "method: full") + "quantization: fake4\n"
    )
    with pytest.raises(ConfigError, match=r"quantized weights cannot be trained with adapter\.method: full"):
        _validate(path, with_quantizer)


def test_missing_required_keys(plugins, write):
    with pytest.raises(ConfigError) as error:
        _validate(write("c.yaml", "data:\n  cutoff_len: 16\n"), plugins)
    message = str(error.value)
    assert "model.name_or_path: required" in message
    assert "training.output_dir: required" in message
    assert "data.dataset: required" in message


def test_overrides_apply_in_order_so_shorthand_and_dotted_keys_combine(plugins, write, base_text):
    config = _validate(
        write("c.yaml", base_text), plugins, ["stage=pt", "stage.packing=false", "training.resume=false"]
    )
    assert config.stage.name == "pt" and config.stage.options.packing is False
    assert config.training.resume is False


def test_options_of_a_default_component_need_no_name(plugins, write, base_text):
    config = _validate(write("c.yaml", base_text + "optimizer:\n  betas: [0.9, 0.95]\n"), plugins)
    assert config.one("optimizer").name == "adamw"
    assert config.one("optimizer").options.betas == [0.9, 0.95]


def test_malformed_override_and_fractional_val_size_are_config_errors(plugins, write, base_text):
    path = write("c.yaml", base_text)
    with pytest.raises(ConfigError):
        _validate(path, plugins, ["loggers.0.log_dir=x"])
    with pytest.raises(
        ConfigError, match=r"data\.val_size: a fraction in \(0, 1\) or a whole row count, got 1\.5"
    ):
        _validate(path, plugins, ["data.val_size=1.5"])


def test_llamafactory_style_keys_get_a_migration_hint(plugins, write):
    path = write("lf.yaml", "model_name_or_path: x\nfinetuning_type: lora\ncutoff_len: 512\nbf16: true\n")
    with pytest.raises(ConfigError) as error:
        _validate(path, plugins)
    # a whole LLaMA-Factory file: one problem naming the importer, not one per flat key
    assert len(error.value.problems) == 1
    message = str(error.value)
    assert f"ft-core import-lf {path}" in message
    assert "model_name_or_path, finetuning_type, cutoff_len, bf16" in message


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("rope_scaling: yarn", "in ft-core write it as model.rope_scaling (e.g. `rope_scaling: yarn`"),
        ("use_unsloth_gc: true", "in ft-core write it as training.gradient_checkpointing: offload"),
        ("torch_compile: true", "in ft-core write it as training.torch_compile."),
        ("use_unsloth: true", "`unsloth: {enabled: true}` with `adapter.method: unsloth_lora`"),
        ("packing: true", "in ft-core write it as data.packing"),
        ("neat_packing: true", "in ft-core write it as data.packing"),
        ("enable_thinking: false", "in ft-core write it as template.kwargs.enable_thinking"),
        ("flash_attn: fa2", "in ft-core write it as model.attn_implementation (`auto`"),
        ("enable_liger_kernel: true", "Liger kernels are on by default on GPU runs"),
    ],
)
def test_more_llamafactory_keys_get_a_migration_hint(plugins, write, base_text, key, expected):
    name = key.split(":")[0]
    with pytest.raises(ConfigError) as error:
        _validate(write("lf.yaml", base_text + key + "\n"), plugins)
    message = str(error.value)
    assert f"`{name}` is a LLaMA-Factory key" in message
    assert expected in message


def test_scheduler_and_attention_choices_are_checked_up_front(plugins, write, base_text):
    path = write("c.yaml", base_text)
    with pytest.raises(ConfigError) as error:
        _validate(
            path, plugins, ["training.lr_scheduler_type=cosin", "model.attn_implementation=flash_attention_2"]
        )
    message = str(error.value)
    assert "training.lr_scheduler_type: expected one of" in message and "Did you mean 'cosine'?" in message
    if importlib.util.find_spec("flash_attn") is None:
        assert "flash_attention_2 needs the flash_attn package" in message


def test_a_dataset_the_stage_cannot_train_on_is_a_config_problem(plugins, write, base_text):
    path = write("c.yaml", base_text)
    with pytest.raises(
        ConfigError, match=r"data\.dataset: dataset 'sharegpt_demo' has formatting 'sharegpt'"
    ):
        _validate(path, plugins, ["stage=pt", "data.dataset=sharegpt_demo"])
    assert _validate(path, plugins, ["stage=pt", "data.dataset=c4_demo"]).stage.name == "pt"


# --------------------------------------------------------------------------- core v2 fixes
def test_unquoted_off_is_the_word_off_not_false(plugins, write, base_text):
    config = _validate(write("c.yaml", base_text + "template:\n  check: off\n"), plugins)
    assert config.template.check == "off"
    assert _validate(write("d.yaml", base_text), plugins, ["template.check=off"]).template.check == "off"


def test_an_override_is_labelled_command_line_not_the_yaml_file(plugins, write, base_text):
    with pytest.raises(ConfigError) as error:
        _validate(
            write("c.yaml", base_text), plugins, ["training.max_steps=0", "training.num_train_epochs=0"]
        )
    problem = next(p for p in error.value.problems if p.startswith("training: set max_steps"))
    assert problem.endswith("[command line]")


def test_a_missing_required_key_names_the_config_file(plugins, write):
    path = write("c.yaml", "data:\n  cutoff_len: 16\n")
    with pytest.raises(ConfigError) as error:
        _validate(path, plugins)
    problem = next(p for p in error.value.problems if p.startswith("model.name_or_path"))
    assert problem.endswith(f"[{path}]")


def test_an_unknown_template_name_fails_validation(plugins, write, base_text):
    with pytest.raises(
        ConfigError, match=r"template.name: unknown chat template 'lama3'.*Did you mean 'llama3'"
    ):
        _validate(write("c.yaml", base_text + "template: lama3\n"), plugins)


def test_a_very_long_model_path_is_a_clear_problem(plugins, write, base_text):
    with pytest.raises(
        ConfigError,
        match=r"model\.name_or_path: a file or folder name of 5000 bytes \(file systems take at most 255\): "
        r"give a shorter path \[command line\]",
    ):
        _validate(write("c.yaml", base_text), plugins, ["model.name_or_path=" + "x" * 5000])


def test_a_missing_dataset_dir_is_named(plugins, write, base_text, tmp_path):
    with pytest.raises(ConfigError, match=r"data.dataset_dir .*nowhere. does not exist"):
        _validate(
            write("c.yaml", base_text),
            plugins,
            ["data.dataset=[mine]", f"data.dataset_dir={tmp_path}/nowhere"],
        )


def test_options_errors_and_cross_section_rules_of_components(write, base_text):
    import types

    from ft_core.api import AdapterMethod, OptionsError, hookimpl

    @dataclasses.dataclass
    class PickyOptions:
        level: int = 1

        def __post_init__(self):
            if self.level > 3:
                raise OptionsError(f"level must be at most 3, got {self.level}")

    class Picky(AdapterMethod[PickyOptions]):
        options_schema = PickyOptions

        def validate(self, options, config):
            if config.data.cutoff_len > 32 and options.level == 3:
                return ["adapter.level: 3 needs data.cutoff_len <= 32"]
            return []

    module = types.ModuleType("picky")

    @hookimpl
    def ft_register_adapters(register):
        register("picky", Picky())

    module.ft_register_adapters = ft_register_adapters
    picky_plugins = load_plugins(strict=True, extra=[(module, "picky-dist")])
    path = write("c.yaml", base_text)
    with pytest.raises(ConfigError, match="adapter: level must be at most 3, got 9"):
        _validate(path, picky_plugins, ["adapter=picky", "adapter.level=9"])
    with pytest.raises(ConfigError, match=r"adapter\.level: 3 needs data\.cutoff_len <= 32"):
        _validate(path, picky_plugins, ["adapter=picky", "adapter.level=3"])
    assert _validate(path, picky_plugins, ["adapter=picky", "adapter.level=2"]).adapter.options.level == 2


def test_a_local_folder_of_a_remote_code_family_needs_trust_remote_code(plugins, write, base_text, tmp_path):
    import json
    import types

    from ft_core.api import ModelFamily, hookimpl

    module = types.ModuleType("vendor_family")

    @hookimpl
    def ft_register_model_families(register):
        family = ModelFamily(
            model_types=("vendorlm",),
            architectures=("VendorForCausalLM",),
            trust_remote_code=True,
            description="VendorLM (remote code)",
        )
        register("vendorlm", family)

    module.ft_register_model_families = ft_register_model_families
    vendor_plugins = load_plugins(strict=True, extra=[(module, "vendor-dist")])
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["VendorForCausalLM"]})
    )
    path = write("c.yaml", base_text)
    local = [f"model.name_or_path={folder}"]
    with pytest.raises(ConfigError) as caught:
        _validate(path, vendor_plugins, local)
    assert (
        f"model.trust_remote_code: {str(folder)!r} is a VendorLM (remote code) model (model_type 'llama', "
        "architectures ['VendorForCausalLM']) whose architecture transformers does not include, so the model's own "
        "Python code must run. Set model.trust_remote_code: true if you trust that code"
    ) in str(caught.value)
    assert _validate(path, vendor_plugins, [*local, "model.trust_remote_code=true"]).model.trust_remote_code
    # A model_type match counts too; without the family registered, nothing is asked.
    (folder / "config.json").write_text(json.dumps({"model_type": "vendorlm"}))
    with pytest.raises(
        ConfigError, match=r"model\.trust_remote_code: .* is a VendorLM \(remote code\) model"
    ):
        _validate(path, vendor_plugins, local)
    assert _validate(path, plugins, local).model.name_or_path == str(folder)


def test_run_without_a_config_says_the_config_is_missing(capsys):
    from ft_core.cli import main

    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "give the config file: ft-core run CONFIG" in err and "key=value" not in err.split("CONFIG")[0]


def test_a_scalar_section_replaced_by_a_later_layer_is_no_crash(plugins, write, base_text):
    with pytest.raises(ConfigError, match="optimizer: expected a name or a mapping"):
        _validate(write("c.yaml", base_text + "optimizer: 5\n"), plugins)
    config = _validate(write("d.yaml", base_text + "optimizer: 5\n"), plugins, ["optimizer=adamw"])
    assert config.one("optimizer").name == "adamw"


def test_llamafactory_keys_inside_a_section_get_the_migration_hint(plugins, write, base_text):
    with pytest.raises(ConfigError) as error:
        _validate(write("c.yaml", base_text), plugins, ["training.bf16=true", "training.lora_rank=8"])
    message = str(error.value)
    assert "training.bf16: a TrainingArguments field ft-core sets itself: training.precision" in message
    assert "`lora_rank` is a LLaMA-Factory key: in ft-core write it as adapter.rank" in message
