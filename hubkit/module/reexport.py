"""Save a loaded (and possibly fine-tuned) module again as a Reusable SavedModel."""

import os
from typing import Any, Mapping

import tensorflow as tf

from hubkit.module import metadata
from hubkit.utils.atomic import atomic_directory


def export_loaded_module(
  obj: Any, export_dir: str, info: Mapping[str, Any], overwrite: bool = False
) -> str:
  """Re-exports an object from `tf.saved_model.load` with its signatures and assets.

  The restored `__call__` traces, variable lists and regularization losses
  are saved as they are, so the Reusable interface survives; assets are
  copied from the original export. `info` (provenance, hyperparameters,
  metrics) goes to assets.extra/hubkit.json.

  Args:
    obj: the loaded module (its variables hold the fine-tuned values).
    export_dir: the directory to create (via a temporary sibling).
    info: metadata fields to record.
    overwrite: replace an existing directory.

  Returns:
    The absolute path of the export.
  """
  with atomic_directory(export_dir, overwrite=overwrite) as tmp:
    tf.saved_model.save(obj, tmp, signatures=dict(getattr(obj, "signatures", {})) or None)
    metadata.write_metadata(tmp, info, module=obj)
  return os.path.abspath(export_dir)
