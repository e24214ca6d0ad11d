"""A transformers-5 causal-LM forward whose training loss is Liger's fused linear cross-entropy.

Why not Liger's own ``lce_forward``: liger-kernel 0.8.5 writes it against the transformers 4.x signature. It
passes ``past_key_values``, ``output_attentions``, ``output_hidden_states``, ``return_dict`` and
``cache_position`` to the decoder, reads ``config.use_return_dict`` and ``outputs.past_key_values``, and its
parameter list has no ``cache``. transformers 5.x renamed the cache argument and output to ``cache`` and keeps the
old names only as deprecation shims (removed in 5.40): on transformers 5.24 that forward gives the right loss but
logs deprecation warnings on every run, and it will break with 5.40. This forward is transformers 5.24's
``LlamaForCausalLM.forward`` (Qwen2 and Qwen3 have the same one) with one change: in training mode with labels,
the loss comes from Liger's ``lce_maybe_trainable_lm_head`` (``LigerForCausalLMLoss``, which also handles PEFT
``modules_to_save`` on the head, FSDP and ``num_items_in_batch``) and no logits are materialised. In eval mode, or
without labels, it computes logits and the model's own loss exactly like the original.
"""

from __future__ import annotations

import inspect
from types import MethodType
from typing import Any

#: Parameters of the transformers-5 causal-LM forward this module replaces.
_EXPECTED = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "cache",
    "inputs_embeds",
    "labels",
    "use_cache",
    "logits_to_keep",
)


def forward_fits(model: Any) -> bool:
    """Whether the model class's forward is the transformers-5 one this module replaces (transformers >= 5.24).

    Earlier transformers releases keep the 4.x-style signature (``past_key_values``, ``cache_position``, ...), which
    is exactly what Liger's own fused forward is written for: the patch uses that one there.
    """
    parameters = inspect.signature(type(model).forward).parameters
    return all(name in parameters for name in _EXPECTED)


def _slice(hidden_states: Any, logits_to_keep: Any) -> Any:
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:  # transformers before the helper existed: its earlier inline form
        index = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        return hidden_states[:, index, :]
    return slice_logits_to_keep(hidden_states, logits_to_keep)


def fused_linear_cross_entropy_forward(
    self: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    position_ids: Any = None,
    cache: Any = None,
    inputs_embeds: Any = None,
    labels: Any = None,
    use_cache: bool | None = None,
    logits_to_keep: Any = 0,
    **kwargs: Any,
) -> Any:
    """``XForCausalLM.forward`` of transformers 5.x with Liger's fused linear cross-entropy as training loss."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    if "past_key_values" in kwargs:  # the old name, still accepted by transformers 5.x until 5.40
        cache = kwargs.pop("past_key_values")
    return_dict = kwargs.pop("return_dict", None)
    shift_labels = kwargs.pop("shift_labels", None)
    outputs = self.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        cache=cache,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **kwargs,
    )
    hidden_states = _slice(outputs.last_hidden_state, logits_to_keep)
    logits = loss = None
    if self.training and (labels is not None or shift_labels is not None):
        from liger_kernel.transformers.model.llama import lce_maybe_trainable_lm_head
        from liger_kernel.transformers.model.loss_utils import unpack_cross_entropy_result

        result = lce_maybe_trainable_lm_head(
            self,
            hidden_states=hidden_states,
            hidden_size=self.config.hidden_size,
            labels=labels,
            shift_labels=shift_labels,
            **kwargs,
        )
        loss = unpack_cross_entropy_result(result)[0]
    else:
        logits = self.lm_head(hidden_states)
        if labels is not None or shift_labels is not None:
            loss = self.loss_function(
                logits=logits,
                labels=labels,
                shift_labels=shift_labels,
                vocab_size=self.config.vocab_size,
                **kwargs,
            )
    output = CausalLMOutputWithPast(
        loss=loss,
        logits=logits,
        cache=outputs.cache,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
    )
    if return_dict is False or (return_dict is None and getattr(self.config, "return_dict", True) is False):
        return output.to_tuple()
    return output


def install_fused_forward(model: Any) -> None:
    """Bind :func:`fused_linear_cross_entropy_forward` as ``model.forward`` (this instance only)."""
    model.forward = MethodType(fused_linear_cross_entropy_forward, model)


def has_fused_forward(model: Any) -> bool:
    """True when ``model`` (a base model, not a PEFT wrapper) runs the fused forward."""
    return getattr(model.forward, "__func__", None) is fused_linear_cross_entropy_forward
