"""Choose the chat template of a run and check it against the tokenizer's own template.

``template: auto`` takes the tokenizer's own Jinja template verbatim (see :func:`derive_template_from_tokenizer`);
a name selects a registered :class:`~ft_core.api.components.ChatTemplate`. When the tokenizer carries its own
template, a named template must render the golden conversations to the same token ids (``template.check``:
``strict`` stops with a diff, ``warn`` prints it, ``off`` skips), unless the template declares
``tokenizer_template_may_differ`` (generic templates such as ``alpaca``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ft_core.api.context import ResolvedTemplate
from ft_core.api.descriptors import ChatTemplate, ModelFamily
from ft_core.api.errors import FtCoreError, TemplateMismatchError
from ft_core.engine.templates.golden import compare_templates
from ft_core.engine.templates.render import TemplateRenderError, render

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ft_core.api.config import TemplateSection
    from ft_core.engine.plugins import Plugins

logger = logging.getLogger(__name__)

#: Distribution recorded for a template taken from the tokenizer.
TOKENIZER_DISTRIBUTION = "tokenizer"
CHECK_MODES = ("strict", "warn", "off")


def tokenizer_chat_template(tokenizer: Any) -> str | None:
    """The tokenizer's own Jinja template (the ``default`` one of a template dict), or ``None``."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def _tokenizer_label(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f"the tokenizer of {name!r}" if name else "the tokenizer"


def _derive_stop_words(tokenizer: Any, jinja: str) -> tuple[str, ...]:
    """The special token that closes an assistant turn, when it is not already EOS (e.g. ``<|eot_id|>``)."""
    marker = "ft-core-answer"
    messages = [{"role": "user", "content": "ft-core-question"}, {"role": "assistant", "content": marker}]
    try:
        prompt = render(tokenizer, jinja, messages[:1], add_generation_prompt=True)
        turn = render(tokenizer, jinja, messages)
    except TemplateRenderError:
        return ()
    span = turn[len(prompt) :] if turn.startswith(prompt) else turn
    position = span.find(marker)
    if position < 0:
        return ()
    tail = span[position + len(marker) :]
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if not ids or ids[0] == tokenizer.eos_token_id:
        return ()
    token = tokenizer.convert_ids_to_tokens(ids[0])
    return (token,) if token in tokenizer.get_added_vocab() else ()


def derive_template_from_tokenizer(tokenizer: Any) -> ChatTemplate:
    """A :class:`ChatTemplate` holding the tokenizer's own Jinja template verbatim.

    Its stop word is the special token that ends an assistant turn when that is not EOS. Raises
    :class:`FtCoreError` when the tokenizer has no chat template.
    """
    jinja = tokenizer_chat_template(tokenizer)
    if jinja is None:
        raise FtCoreError(f"{_tokenizer_label(tokenizer)} has no chat template to derive one from")
    return ChatTemplate(
        jinja=jinja,
        stop_words=_derive_stop_words(tokenizer, jinja),
        description=f"derived from {_tokenizer_label(tokenizer)}",
    )


def _no_tokenizer_template_message(plugins: Plugins, tokenizer: Any, family: ModelFamily | None) -> str:
    registry = plugins.registries["chat_template"]
    available = ", ".join(f"{n} ({registry[n].distribution})" for n in sorted(registry)) or "none installed"
    message = (
        f"template: auto uses the tokenizer's own chat template, but {_tokenizer_label(tokenizer)} has none "
        "(a base model?). Name a registered template instead"
    )
    if family is not None and family.default_template:
        message += f", e.g. `template: {family.default_template}` (this model family's default)"
    return message + f". Available chat templates: {available}."


def _normalized(jinja: str) -> str:
    return "".join(jinja.split())


def matching_templates(plugins: Plugins, tokenizer: Any, jinja: str, family: ModelFamily | None) -> list[str]:
    """Registered templates that are the tokenizer's ``jinja``: the same text (whitespace aside), or, among the
    model family's templates, the same token ids on every golden conversation."""
    registry = plugins.registries["chat_template"]
    same_text = [
        name for name in sorted(registry) if _normalized(registry[name].component.jinja) == _normalized(jinja)
    ]
    if same_text or family is None:
        return same_text
    candidates = [name for name in family.templates if name in registry]
    return [
        name
        for name in candidates
        if compare_templates(
            tokenizer, jinja, registry[name].component.jinja, registry[name].component.template_kwargs
        )
        is None
    ]


def _resolved(
    name: str, template: ChatTemplate, distribution: str, version: str, kwargs: dict[str, Any], **fields: Any
) -> ResolvedTemplate:
    return ResolvedTemplate(
        name=name,
        jinja=fields.pop("jinja", template.jinja),
        stop_words=tuple(template.stop_words),
        distribution=distribution,
        version=version,
        derived_from_tokenizer=fields.pop("derived_from_tokenizer", False),
        tokenizer_template_may_differ=template.tokenizer_template_may_differ,
        prefix_stable=template.prefix_stable,
        stop_at_next_turn=template.stop_at_next_turn,
        template_kwargs={**template.template_kwargs, **kwargs},
        parse_tool_calls=template.parse_tool_calls,
    )


def resolve_template(
    plugins: Plugins, section: TemplateSection, tokenizer: Any, family: ModelFamily | None
) -> ResolvedTemplate:
    """Resolve ``section.name`` (``auto`` or a registered name) and check it with ``section.check``.

    ``auto`` takes the tokenizer's own Jinja verbatim; when a registered template is that template (see
    :func:`matching_templates`), its name, stop words, tool-call format and keyword defaults come with it.
    A template derived from an unknown tokenizer template is encoded turn by turn where it is not prefix-stable.
    """
    kwargs = dict(section.kwargs)
    if section.name == "auto":
        if tokenizer_chat_template(tokenizer) is None:
            raise FtCoreError(_no_tokenizer_template_message(plugins, tokenizer, family))
        derived = derive_template_from_tokenizer(tokenizer)
        matches = matching_templates(plugins, tokenizer, derived.jinja, family)
        if matches:
            registration = plugins.registration("chat_template", matches[0])
            resolved = _resolved(
                matches[0],
                registration.component,
                registration.distribution,
                registration.version,
                kwargs,
                jinja=derived.jinja,
                derived_from_tokenizer=True,
            )
        else:
            resolved = _resolved(
                "auto",
                replace(derived, prefix_stable=False),
                TOKENIZER_DISTRIBUTION,
                "sha256:" + hashlib.sha256(derived.jinja.encode()).hexdigest()[:12],
                kwargs,
                derived_from_tokenizer=True,
            )
    else:
        registration = plugins.registration("chat_template", section.name)
        resolved = _resolved(
            section.name, registration.component, registration.distribution, registration.version, kwargs
        )
    check_template(tokenizer, resolved, section.check, plugins=plugins)
    check_stop_words(tokenizer, resolved, section.check)
    return resolved


def _report(message: str, mode: str) -> None:
    """A template problem: an error under ``template.check: strict``, a warning under ``warn``."""
    if mode == "strict":
        raise TemplateMismatchError(message)
    logger.warning(message)


def check_stop_words(tokenizer: Any, resolved: ResolvedTemplate, mode: str = "strict") -> None:
    """Each stop word of the template must be one token of the tokenizer, or generation could never stop on it (the
    model emits the token, not the characters): a multi-token stop word means template and model don't match.
    Reported as ``template.check`` says (strict: error, warn: warning, off: skipped)."""
    if mode == "off":
        return
    for word in resolved.stop_words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            _report(
                f"chat template {resolved.name!r} ({resolved.distribution}) ends assistant turns with {word!r}, but "
                f"{_tokenizer_label(tokenizer)} splits it into {len(ids)} tokens: the tokenizer lacks this special "
                "token, so this template was not made for this model. Use `template: auto` or this model's own "
                "template (or set template.check: warn / off if this is intended).",
                mode,
            )


def check_template(
    tokenizer: Any, resolved: ResolvedTemplate, mode: str, plugins: Plugins | None = None
) -> None:
    """Compare ``resolved`` with the tokenizer's own template on the golden conversations.

    ``strict`` raises :class:`TemplateMismatchError` with a readable diff, ``warn`` logs it as a warning,
    ``off`` skips. Nothing is compared when the tokenizer has no template, the template was derived from it,
    or the template declares ``tokenizer_template_may_differ``.
    """
    if mode not in CHECK_MODES:
        raise FtCoreError(f"template.check must be one of {', '.join(CHECK_MODES)}, got {mode!r}")
    own = tokenizer_chat_template(tokenizer)
    if (
        mode == "off"
        or own is None
        or resolved.derived_from_tokenizer
        or resolved.tokenizer_template_may_differ
    ):
        return
    if own == resolved.jinja:
        return
    diff = compare_templates(tokenizer, own, resolved.jinja, resolved.template_kwargs)
    if diff is None:
        return
    matches = matching_templates(plugins, tokenizer, own, None) if plugins is not None else []
    suggestion = (
        f"use `template: {matches[0]}` (the registered template that is this tokenizer's own) or `template: auto`"
        if matches
        else "use `template: auto` to train with the tokenizer's own template, or pick the template matching this model"
    )
    tokenizer_side = "tokenizer's own template"
    ours = f"template {resolved.name!r}"
    source = getattr(tokenizer, "name_or_path", "") or ""
    shipped = f"the chat template shipped with {source!r}" if source else "the tokenizer's own chat template"
    _report(
        f"chat template {resolved.name!r} ({resolved.distribution} {resolved.version}) does not render like "
        f"{shipped}, so the model would be trained on a format it was not tuned with.\n"
        f"{diff.describe(tokenizer, tokenizer_side, ours)}\n"
        f"What to do: {suggestion}; if the difference is intended, set `template.check: warn` (or `off`).",
        mode,
    )


def apply_template_to_tokenizer(tokenizer: Any, resolved: ResolvedTemplate) -> None:
    """Make ``tokenizer`` carry the run's template (so the saved tokenizer has it) and a pad token.

    The pad token becomes EOS when the tokenizer has none.
    """
    tokenizer.chat_template = resolved.jinja
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
