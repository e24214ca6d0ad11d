"""The tensorboard logger writes real event files with the logged scalars."""

import ft_core_tensorboard
from ft_core.testing.import_light import check_import_light


def test_registers_tensorboard(make_plugins):
    plugins = make_plugins(ft_core_tensorboard)
    assert "tensorboard" in plugins.names("logger")
    assert plugins.get("logger", "tensorboard").options_schema is ft_core_tensorboard.TensorBoardOptions


def test_callback_writes_scalars_to_event_files(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import TrainerState, TrainingArguments

    logger = ft_core_tensorboard.TensorBoardLogger()
    callback = logger.callback(ft_core_tensorboard.TensorBoardOptions(), str(tmp_path))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state = TrainerState(global_step=3)
    callback.on_train_begin(args, state, None)
    callback.on_log(args, state, None, logs={"loss": 1.5, "learning_rate": 1e-4})
    callback.on_train_end(args, state, None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss")] == [1.5]
    assert [e.step for e in events.Scalars("train/loss")] == [3]


def test_registration_is_import_light():
    check_import_light("ft_core_tensorboard")


def test_log_dir_option_places_the_event_files(tmp_path):
    from transformers import TrainerState, TrainingArguments

    options = ft_core_tensorboard.TensorBoardOptions(log_dir=str(tmp_path / "elsewhere"))
    callback = ft_core_tensorboard.TensorBoardLogger().callback(options, str(tmp_path / "run"))
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    callback.on_train_begin(args, TrainerState(global_step=1), None)
    callback.on_log(args, TrainerState(global_step=1), None, logs={"loss": 2.0})
    callback.on_train_end(args, TrainerState(global_step=1), None)
    assert list((tmp_path / "elsewhere").glob("events.out.tfevents.*"))
    assert not (tmp_path / "run" / "tensorboard").exists()
