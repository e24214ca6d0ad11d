"""ft-core: fine-tune large language models with a minimal core and pluggy plugins.

Public API for plugin authors: :mod:`ft_core.hookspecs` (``hookimpl``), :mod:`ft_core.components`
(base classes), :mod:`ft_core.errors`, :mod:`ft_core.testing` (pytest fixtures and conformance checks).
"""

__version__ = "0.1.0"
