"""The engine's :class:`~ft_core.api.context.RunContext`: the services stages and plugins use during a run."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ft_core.api.config import RunConfig
from ft_core.api.context import Encoder, ProcessInfo, ResolvedTemplate, RunContext
from ft_core.api.descriptors import ModelFamily
from ft_core.api.events import RunEvent
from ft_core.engine.plugins import Plugins
from ft_core.engine.run import distributed
from ft_core.engine.templates.encoder import TemplateEncoder
from ft_core.engine.training.callbacks import (
    CancelRequest,
    checkpointing_callback,
    control_callback,
    event_callback,
    progress_callback,
)
from ft_core.engine.training.heads import find_heads, heads_callback, train_heads
from ft_core.engine.vision import vision_encoding


class EngineRun(RunContext):
    """One run: config, plugins and the pieces the runner resolves step by step (tokenizer, template, family)."""

    def __init__(self, config: RunConfig, plugins: Plugins, run_dir: Path) -> None:
        self.config = config
        self.plugins = plugins
        self.run_dir = run_dir
        self.process: ProcessInfo = distributed.process_info()
        self.tokenizer: Any = None
        self.template: ResolvedTemplate | None = None
        self.family: ModelFamily | None = None
        self.cancel = CancelRequest(run_dir)
        #: Training seconds spent before the checkpoint this run resumes from.
        self.prior_runtime = 0.0
        #: The stage's head modules of the trained model (``TrainingStage.head_modules``), by name.
        self.heads: dict[str, Any] = {}
        #: Facts the model loading decided (attention, RoPE scaling, checkpointing), for the run manifest.
        self.facts: dict[str, Any] = {}
        self._checkpointing: Any = None
        #: Token counts of the prepared training rows (set once the data is ready), for the checkpointing estimate.
        self.train_lengths: list[int] | None = None
        self._said: set[str] = set()

    def say(self, message: str, key: str | None = None) -> None:
        """A progress line on stderr (main process only); with ``key``, only the first line for that key."""
        import sys

        if key is not None:
            if key in self._said:
                return
            self._said.add(key)
        if self.process.is_main_process:
            print(f"[ft-core] {message}", file=sys.stderr, flush=True)

    @property
    def uses_gpu(self) -> bool:
        from ft_core.engine.training.arguments import uses_cpu

        return not uses_cpu(self.config.training)

    # ------------------------------------------------------------------ models
    def load_model(self, role: str = "policy", *, trainable: bool = True) -> Any:
        from transformers import AutoConfig, AutoModelForCausalLM, set_seed

        from ft_core.engine.models.attention import choose_attention
        from ft_core.engine.models.loader import (
            apply_rope_scaling,
            choose_dtype,
            loading,
            model_folder,
            prepare_for_training,
        )
        from ft_core.engine.vision import model as vision

        config, hook = self.config, self.plugins.hook
        model_section, training = config.model, config.training
        set_seed(training.seed)  # adapter initialisation is random: same seed, same run
        folder = model_folder(model_section)
        with loading("model", model_section.name_or_path):
            model_config = AutoConfig.from_pretrained(
                folder, trust_remote_code=model_section.trust_remote_code
            )
        rope = apply_rope_scaling(model_config, model_section.rope_scaling, config.data.cutoff_len)
        if rope:
            self.say(rope, key="rope")
            self.facts["rope_scaling"] = rope
        patches = config.many("patches")
        for patch in patches:
            patch.component.patch_config(model_config, patch.options)
        hook.ft_adjust_model_config(model_config=model_config, run=self, role=role)
        dtype = choose_dtype(model_section, training.precision, training.use_cpu)
        kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": model_section.trust_remote_code}
        attention = choose_attention(
            model_section.attn_implementation, model_config, on_gpu=self.uses_gpu, dtype=dtype
        )
        if attention.implementation:
            kwargs["attn_implementation"] = attention.implementation
        if attention.implementation == "torch_varlen":
            from ft_core.engine.models import varlen_attention

            varlen_attention.register()
        self.say(attention.log_line(), key="attention")
        self.facts.setdefault("attention", attention.manifest())
        plan = self.checkpointing_plan(model_config, dtype) if trainable else None
        quantizer = config.one("quantization")
        if quantizer is not None:
            kwargs.update(quantizer.component.load_kwargs(quantizer.options, model_config))
            # each process its own GPU; on a CPU run, the CPU even where a GPU exists
            kwargs["device_map"] = {"": self.process.local_rank if self.uses_gpu else "cpu"}
        model = hook.ft_load_model(run=self, role=role, model_config=model_config, load_kwargs=kwargs)
        if model is None:
            with loading("model weights", model_section.name_or_path):
                auto_class = vision.model_class(self.family, AutoModelForCausalLM)
                model = auto_class.from_pretrained(folder, config=model_config, **kwargs)
        if quantizer is not None and trainable:
            model = quantizer.component.prepare(model, quantizer.options, self)
        for patch in patches:
            model = patch.component.patch_model(model, patch.options)
        hook.ft_patch_model(model=model, run=self, role=role)
        stage = config.stage.component
        model = stage.prepare_model(model, self, role)
        if trainable:
            prepare_for_training(model, plan)
            adapter = config.adapter
            model = adapter.component.apply(model, adapter.options, self.family)
            vision.apply_vision_freezing(model, self.family, model_section, adapter.component)
            if stage.head_modules:
                self.heads = find_heads(model, stage.head_modules)
                train_heads(self.heads)
            model.train()
        else:
            model.requires_grad_(False)
            model.eval()
        hook.ft_model_ready(model=model, run=self, role=role)
        return model

    def checkpointing_plan(self, model_config: Any = None, dtype: Any = None) -> Any:
        """The run's activation-checkpointing plan (``training.gradient_checkpointing``), decided once: before the
        first trained model's weights load, so that the free GPU memory is measured without them."""
        if self._checkpointing is None:
            from ft_core.engine.training.checkpointing import plan_for_run

            if model_config is None or dtype is None:
                from transformers import AutoConfig

                from ft_core.engine.models.loader import choose_dtype, loading, model_folder

                model_section, training = self.config.model, self.config.training
                with loading("model", model_section.name_or_path):
                    model_config = AutoConfig.from_pretrained(
                        model_folder(model_section), trust_remote_code=model_section.trust_remote_code
                    )
                dtype = choose_dtype(model_section, training.precision, training.use_cpu)
            self._checkpointing = plan_for_run(
                self.config,
                model_config,
                on_gpu=self.uses_gpu,
                dtype=dtype,
                device=self.process.local_rank,
                lengths=self.train_lengths,
            )
            self.say(self._checkpointing.log_line())
            self.facts["gradient_checkpointing"] = self._checkpointing.manifest()
        return self._checkpointing

    # ------------------------------------------------------------------ training
    def training_arguments(self, arguments_class: type | None = None, **overrides: Any) -> Any:
        from transformers import TrainingArguments

        from ft_core.engine.training.arguments import training_arguments_kwargs

        cls = arguments_class or TrainingArguments
        has_eval = bool(self.config.data.eval_dataset) or self.config.data.val_size > 0
        kwargs = training_arguments_kwargs(
            cls, self.config.training, self.run_dir, has_eval, checkpointing=self.checkpointing_plan()
        )
        if self.config.training.torch_compile and not self.uses_gpu:
            self.say(
                "torch_compile: off on the CPU (training.torch_compile applies to GPU runs)", key="compile"
            )
        kwargs.update(overrides)
        self.plugins.hook.ft_adjust_training_arguments(arguments=kwargs, run=self)
        return cls(**kwargs)

    def callbacks(self) -> list[Any]:
        """The callbacks of every trainer of this run: events, cancellation, loggers, optimizer, plugins."""
        callbacks = [
            event_callback(self.emit, self.run_dir),
            control_callback(self.cancel),
            progress_callback(self.prior_runtime),
        ]
        if self.process.is_main_process:
            callbacks += [
                lg.component.callback(lg.options, str(self.run_dir)) for lg in self.config.many("loggers")
            ]
        if self.heads:
            callbacks.append(heads_callback(self.heads))
        plan = self._checkpointing
        if plan is not None and plan.enabled and (plan.offload or plan.every_n_layers > 1):
            callbacks.append(checkpointing_callback(plan.every_n_layers, plan.offload))
        optimizer = self.config.optimizer
        callbacks += optimizer.component.callbacks(optimizer.options)
        for found in self.plugins.hook.ft_trainer_callbacks(run=self):
            callbacks += found or []
        return callbacks

    def build_trainer(
        self,
        *,
        model: Any,
        args: Any,
        train_dataset: Any,
        eval_dataset: Any = None,
        data_collator: Any = None,
        trainer_class: type | None = None,
        **trainer_kwargs: Any,
    ) -> Any:
        from transformers import Trainer

        from ft_core.engine.training.packing import (
            PackingPlan,
            PaddedBatchesPlan,
            is_varlen,
            match_attention,
            plan_packing,
        )
        from ft_core.engine.training.padding_free import PaddingFreeForward
        from ft_core.engine.training.trainer import build_trainer

        optimizer = self.config.optimizer
        stage = self.config.stage.component
        merge, merged_fits = self._accumulation_to_merge(args, model)
        packing = plan_packing(
            self.config,
            stage,
            model,
            train_dataset,
            self.uses_gpu,
            self.say,
            merge_accumulation=merge,
            merged_fits=merged_fits,
        )
        if packing is not None:
            self.facts["packing"] = packing.manifest()
        self._pin_offload_arena(model, packing if isinstance(packing, PackingPlan) else None)
        if isinstance(packing, PaddedBatchesPlan):  # the stage's batches, each forward pass padding-free
            forward = PaddingFreeForward(varlen_kwargs=is_varlen(packing.attention))
            forward.attach(model)
            reference = trainer_kwargs.get("ref_model")
            if reference is not None:
                match_attention(reference, packing.attention)
                forward.attach(reference)
            packing = None
        # data.packing: the engine's padding-free batches replace the stage's padded ones
        if packing is not None:
            data_collator = packing.collator
            if packing.merged_accumulation > 1:
                args.gradient_accumulation_steps = 1
        if data_collator is not None:
            from ft_core.engine.models.loader import model_folder
            from ft_core.engine.vision import wrap_collator

            folder = model_folder(self.config.model)
            trainer_kwargs["data_collator"] = wrap_collator(
                self, data_collator, folder, packed=packing is not None
            )
        return build_trainer(
            trainer_class or Trainer,
            optimizer=optimizer,
            adjust_groups=lambda groups, model: self.plugins.hook.ft_adjust_parameter_groups(
                groups=groups, model=model, run=self
            ),
            callbacks=self.callbacks(),
            mixins=(packing.mixin,) if packing is not None else (),
            attributes={"ft_batch_sampler": packing.sampler} if packing is not None else None,
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=self.tokenizer,
            **trainer_kwargs,
        )

    def _pin_offload_arena(self, model: Any, packing: Any) -> None:
        """With offloaded checkpointing on a GPU, start pinning the host memory that the run's largest micro-batch
        offloads now, in the background, instead of in its first steps (``packing``: the run's
        :class:`~ft_core.engine.training.packing.PackingPlan`, or ``None`` for padded batches)."""
        plan = self._checkpointing
        if plan is None or not plan.offload or not self.uses_gpu:
            return
        from ft_core.engine.models.offload import reserve_for_largest_step
        from ft_core.engine.training.checkpointing import hidden_bytes_per_token, micro_batch

        if packing is not None:
            tokens = packing.sampler.largest_batch()
        else:
            sequences, length = micro_batch(self.config, self.train_lengths)
            tokens = sequences * length
        reserve_for_largest_step(model, tokens, hidden_bytes_per_token(model), self.process.local_rank)

    def _accumulation_to_merge(self, args: Any, model: Any) -> tuple[int, Callable[[int], bool] | None]:
        """The gradient accumulation steps a packed run may merge into one micro-batch, and the check the largest
        merged micro-batch (in tokens) must pass (``data.packing_merge_accumulation``; ``(1, None)``: none)."""
        data, steps = self.config.data, int(getattr(args, "gradient_accumulation_steps", 1) or 1)
        setting = data.packing_merge_accumulation
        if steps <= 1 or setting is False or data.packing_tokens is not None:
            return 1, None
        if setting is True:
            return steps, None
        if not self.uses_gpu:
            return 1, None
        from ft_core.engine.training.checkpointing import merged_batch_fits

        plan, device = self.checkpointing_plan(), self.process.local_rank
        return steps, lambda tokens: merged_batch_fits(self.config, model, plan, tokens, device=device)

    # ------------------------------------------------------------------ data and events
    def encoder(self) -> Encoder:
        from ft_core.engine.models.loader import model_folder

        data = self.config.data
        template = self.template
        return TemplateEncoder(
            tokenizer=self.tokenizer,
            jinja=template.jinja if template is not None else None,
            cutoff_len=data.cutoff_len,
            train_on_prompt=data.train_on_prompt,
            mask_history=data.mask_history,
            system=self.config.template.system,
            template_name=template.name if template is not None else None,
            prefix_stable=template.prefix_stable if template is not None else True,
            template_kwargs=dict(template.template_kwargs) if template is not None else {},
            vision=vision_encoding(self, model_folder(self.config.model))
            if self.family is not None
            else None,
        )

    def emit(self, event: RunEvent) -> None:
        if self.process.is_main_process:
            self.plugins.hook.ft_run_event(event=event)

    def phase(self, phase: str, message: str = "") -> None:
        """Emit a ``phase`` event."""
        self.emit(RunEvent("phase", str(self.run_dir), phase=phase, message=message))

    def main_process_first(self) -> AbstractContextManager[None]:
        return distributed.main_process_first()
