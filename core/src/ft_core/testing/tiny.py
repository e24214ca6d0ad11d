"""Tiny random-init models and tokenizers built in-process (no downloads), for tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

DEFAULT_SPECIAL_TOKENS = (
    "<unk>",
    "<s>",
    "</s>",
    "<pad>",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|endoftext|>",
    "<tool_call>",
    "</tool_call>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
)

_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Who are you? I am a helpful assistant.",
    "system user assistant tool You are a helpful AI assistant. What is the capital of France? Paris.",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\n### Input:\n### Response:\nUSER: ASSISTANT: Human: Assistant: 0123456789",
    'Translate, summarize, explain, list, write a poem, hello world, thanks, goodbye, {"name": "get_weather"}',
)


def tiny_tokenizer(
    special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
    chat_template: str | None = CHATML_JINJA,
    vocab_size: int = 400,
    bos_token: str | None = "<s>",
    eos_token: str = "<|im_end|>",
    pad_token: str | None = "<pad>",
) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on a few sentences (milliseconds).

    Every string encodes (byte fallback through the byte-level alphabet) and offsets are exact, like the
    real models' tokenizers. Special tokens are atomic.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys(special_tokens))
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(_CORPUS) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token="<unk>",
        additional_special_tokens=[
            t for t in specials if t not in {"<unk>", bos_token, eos_token, pad_token}
        ],
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


class SlowTokenizerView:
    """A fast tokenizer seen as a slow one (``is_fast`` False, no offsets): what the piece-by-piece encoding paths
    for tokenizers without a Rust backend see."""

    is_fast = False

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __call__(self, text: str, **kwargs: Any) -> Any:
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("slow tokenizers have no offsets")
        return self._tokenizer(text, **kwargs)


def tiny_model(tokenizer: Any, seed: int = 0, model_type: str = "llama", **overrides: Any) -> Any:
    """A random-init causal LM of ``model_type`` (any Llama-like architecture: llama, qwen2, mistral, ...)
    with a few thousand parameters, matching ``tokenizer``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings))


def save_tiny_model_dir(path: str, chat_template: str | None = CHATML_JINJA, seed: int = 0) -> str:
    """Write a tiny model + tokenizer as a Hugging Face folder at ``path`` and return ``path``."""
    tokenizer = tiny_tokenizer(chat_template=chat_template)
    model = tiny_model(tokenizer, seed=seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


#: The words of :func:`save_tiny_word_model_dir`'s vocabulary besides its special tokens and chat roles.
TINY_WORDS = ("yes", "no", "maybe", "cat", "dog", "red", "blue", "one", "two", "three")


def save_tiny_word_model_dir(path: str, words: Iterable[str] = TINY_WORDS, seed: int = 0) -> str:
    """Write a random-init causal LM with a word-level tokenizer of about 20 tokens (special tokens, the chat roles,
    ``say something`` and ``words``) and a one-line ChatML-like template as a Hugging Face folder at ``path``;
    return ``path``. Its sampling starts near uniform over a few words, so online-RL tests (a reward counting one
    word) see the mean reward move within a few steps. ``<|im_end|>`` is EOS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    names = [*specials, "user", "assistant", "system", "say", "something", *dict.fromkeys(words)]
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(names)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|> ' + m['role'] + ' ' + m['content'] + ' <|im_end|> ' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|> assistant ' }}{% endif %}"
    )
    tiny_model(tokenizer, seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
