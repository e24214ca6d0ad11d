"""Training: arguments, the trainer wiring (optimizer, token counting) and the callbacks of every run."""
