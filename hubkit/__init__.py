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
  "ReusableModule": "hubkit.reusable",
  "write_metadata": "hubkit.metadata",
  "read_metadata": "hubkit.metadata",
  "load_weights": "hubkit.weights",
  "export_module": "hubkit.modules",
  "build_module": "hubkit.modules",
  "export_keras_submodel": "hubkit.exporters.keras_submodel",
  "load_keras_model": "hubkit.exporters.sources",
  "KerasLayer": "hubkit.keras_layer",
  "check_module": "hubkit.checker",
  "module_info": "hubkit.info",
  "diff_modules": "hubkit.diff",
  "convert_module": "hubkit.litert",
  "add_to_kagglehub_cache": "hubkit.kaggle",
  "pack_module": "hubkit.pack",
  "validate_card": "hubkit.card",
  "publish_module": "hubkit.hosting",
  "serve": "hubkit.hosting",
  "serving": "hubkit.hosting",
  "resolve": "hubkit.resolver",
  "load": "hubkit.resolver",
  "ModuleCache": "hubkit.cache",
  "finetune": "hubkit.finetune",
  "export_loaded_module": "hubkit.reexport",
  "Report": "hubkit.checker",
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
