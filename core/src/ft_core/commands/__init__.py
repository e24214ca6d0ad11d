"""Core's built-in ``ft-core`` sub-commands."""
