"""Inference: what to load for ``ft-core chat`` and the built-in Hugging Face engine."""
