"""hubkit: export, check, fine-tune and share Reusable TensorFlow SavedModels.

Public names are imported lazily so that `import hubkit` (and the CLI's
`--help`) stays fast and only pulls in Keras when a Keras feature is used.
"""

import importlib
from typing import Any

from hubkit.errors import ArchiveError, FetchError, HubkitError, NotFoundError, UsageError
from hubkit.version import __version__

# public name -> module that defines it
_PUBLIC = {
  "ReusableModule": "hubkit.module.reusable",
  "write_metadata": "hubkit.module.metadata",
  "read_metadata": "hubkit.module.metadata",
  "load_weights": "hubkit.module.weights",
  "export_module": "hubkit.modules",
  "build_module": "hubkit.modules",
  "export_keras_submodel": "hubkit.exporters.keras_submodel",
  "load_keras_model": "hubkit.exporters.sources",
  "KerasLayer": "hubkit.keras_layer",
  "check_module": "hubkit.checker.check",
  "module_info": "hubkit.inspection.info",
  "diff_modules": "hubkit.inspection.diff",
  "convert_module": "hubkit.formats.litert",
  "add_to_kagglehub_cache": "hubkit.registry.kaggle",
  "pack_module": "hubkit.registry.pack",
  "validate_card": "hubkit.registry.card",
  "publish_module": "hubkit.registry.publishing",
  "serve": "hubkit.registry.http_server",
  "serving": "hubkit.registry.http_server",
  "resolve": "hubkit.cache.resolver",
  "load": "hubkit.cache.resolver",
  "ModuleCache": "hubkit.cache.store",
  "finetune": "hubkit.training.finetune",
  "export_loaded_module": "hubkit.module.reexport",
  "Report": "hubkit.checker.report",
}

__all__ = [  # noqa: PLE0604 (_PUBLIC holds strings)
  "ArchiveError",
  "FetchError",
  "HubkitError",
  "NotFoundError",
  "UsageError",
  "__version__",
  *sorted(_PUBLIC),
]


def __getattr__(name: str) -> Any:
  if name in _PUBLIC:
    return getattr(importlib.import_module(_PUBLIC[name]), name)
  raise AttributeError(f"module 'hubkit' has no attribute {name!r}")


def __dir__():
  return __all__
