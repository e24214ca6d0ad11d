"""Run configuration: YAML loading (includes + overrides) and strict validation."""
