"""Chat templates: render conversations, mark trained tokens, resolve and check the run's template.

Import-light: nothing here imports torch; transformers is used through the tokenizer passed in.
"""

from ft_core.templates.golden import RenderingDiff, compare_templates, golden_conversations
from ft_core.templates.render import (
    IGNORE_INDEX,
    AssistantSpan,
    RenderedConversation,
    TemplateRenderError,
    encode_conversation,
    generation_inputs,
    render,
    render_conversation,
    stop_token_ids,
    with_system,
)
from ft_core.templates.resolve import (
    ResolvedTemplate,
    apply_template_to_tokenizer,
    check_template,
    derive_template_from_tokenizer,
    resolve_template,
    tokenizer_chat_template,
)

__all__ = [
    "IGNORE_INDEX",
    "AssistantSpan",
    "RenderedConversation",
    "RenderingDiff",
    "ResolvedTemplate",
    "TemplateRenderError",
    "apply_template_to_tokenizer",
    "check_template",
    "compare_templates",
    "derive_template_from_tokenizer",
    "encode_conversation",
    "generation_inputs",
    "golden_conversations",
    "render",
    "render_conversation",
    "resolve_template",
    "stop_token_ids",
    "tokenizer_chat_template",
    "with_system",
]
