"""ft-core: fine-tune large language models with a minimal core and pluggy plugins.

Public API for plugin authors: :mod:`ft_core.api.hookspecs` (``hookimpl``), :mod:`ft_core.api.components`
(base classes), :mod:`ft_core.api.errors`, :mod:`ft_core.testing` (pytest fixtures and conformance checks).
"""

__version__ = "0.2.0"
