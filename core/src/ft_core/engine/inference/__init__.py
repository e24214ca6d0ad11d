"""Inference: what to load for chat, and the built-in Hugging Face engine."""
