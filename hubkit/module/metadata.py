"""Provenance of an export, kept in ``assets.extra/hubkit.json``.

TensorFlow is imported only by the functions that need it, so that reading
metadata (the cache, the registry) stays cheap.

``assets.extra`` is inside the tfhub.dev allow-list and is ignored by the
SavedModel loader, so the metadata travels with the module without changing
how it loads.
"""

import json
import os
import platform
from typing import Any, Dict, Mapping, Optional

from hubkit.errors import UsageError
from hubkit.module import layout
from hubkit.utils.digest import sha256_file
from hubkit.version import __version__

FORMAT_VERSION = 1


def _keras_versions() -> Dict[str, Optional[str]]:
  versions = {}
  for name in ("keras", "tf_keras"):
    try:
      versions[name] = __import__(name).__version__
    except ImportError:
      versions[name] = None
  return versions


def write_metadata(
  export_dir: str, info: Mapping[str, Any], module: Optional[Any] = None
) -> Dict[str, Any]:
  """Writes ``assets.extra/hubkit.json`` into a finished SavedModel directory.

  The one writer of the record: every exporter, the re-exporter and the
  fine-tuner call it, so every module records the same keys. The interface
  part (inputs, outputs, takes_training, variables, regularization losses,
  signatures) comes from `hubkit.module.interface.describe`; `info` adds what only
  the caller knows (source and provenance, parity, metrics).

  Args:
    export_dir: the SavedModel root; all its files must already be written.
    info: caller-specific fields, merged over the interface description.
    module: the live or loaded module to describe; when None the SavedModel
      in `export_dir` is loaded to read it.

  Returns:
    The record written, including the sha256 of every other file.
  """
  import tensorflow as tf
  from hubkit.module import interface

  if module is None:
    module = tf.saved_model.load(export_dir)
  record = {
    "format_version": FORMAT_VERSION,
    "hubkit_version": __version__,
    "tensorflow_version": tf.__version__,
    **{f"{k}_version": v for k, v in _keras_versions().items()},
    "python_version": platform.python_version(),
  }
  record.update(interface.describe(module, export_dir))
  record.update(info)
  record["files"] = {
    rel: sha256_file(os.path.join(export_dir, rel))
    for rel in layout.iter_files(export_dir)
    if rel != layout.METADATA_RELPATH.replace(os.sep, "/")
  }
  path = os.path.join(export_dir, layout.METADATA_RELPATH)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2, sort_keys=True)
    f.write("\n")
  return record


def read_json_object(path: str) -> Optional[Dict[str, Any]]:
  """The JSON object in a file, or None when it is missing, unreadable or not
  an object (for records that are a convenience, never a reason to fail)."""
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  return record if isinstance(record, dict) else None


def read_metadata(export_dir: str) -> Optional[Dict[str, Any]]:
  """Returns the hubkit metadata of an export, or None if it has none.

  Raises:
    UsageError: the file exists but is not a valid JSON object.
  """
  path = os.path.join(export_dir, layout.METADATA_RELPATH)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError) as e:
    raise UsageError(
      f"{path} is not valid JSON ({e}); re-export the module or delete the file."
    ) from e
  if not isinstance(record, dict) or not isinstance(record.get("files", {}), dict):
    raise UsageError(
      f"{path} is not a hubkit metadata object; re-export the module or delete the file."
    )
  return record


def export_summary(export_dir: str) -> str:
  """One line describing an export from its hubkit.json (what the export
  commands print)."""
  record = read_metadata(export_dir) or {}
  line = (
    f"exported to {export_dir}: {record.get('num_parameters', 0):,} parameters, "
    f"{record.get('num_variables', 0)} variables "
    f"({record.get('num_trainable_variables', 0)} trainable), "
    f"{record.get('num_regularization_losses', 0)} regularization losses"
  )
  if "parity_max_abs_diff" in record:
    diff = record["parity_max_abs_diff"]
    line += f", parity max abs diff {'n/a' if diff is None else f'{diff:.2e}'}"
  return line
