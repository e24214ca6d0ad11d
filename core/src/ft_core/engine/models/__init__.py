"""Model loading: the embedded default model, GGUF conversion, tokenizer and model loading."""
