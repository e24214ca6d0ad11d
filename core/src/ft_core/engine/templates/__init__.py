"""Chat templates: render conversations, mark trained tokens, resolve and check the run's template, encode samples."""
