"""Load a Keras model from any supported source, tf_keras or Keras 3.

| source                                   | Keras flavour              |
|------------------------------------------|----------------------------|
| an in-memory `tf_keras.Model`/`keras.Model` | as it is                |
| a tf_keras SavedModel directory          | tf_keras (keras_metadata.pb) |
| `.h5` file                               | by its `keras_version` attribute |
| `.keras` file                            | Keras 3                    |
| `.json` config plus a weights file       | by its `keras_version`     |
"""

import json
import os
from typing import Any, Optional

from hubkit.errors import UsageError

SUPPORTED = (
  "an in-memory tf_keras or Keras 3 model",
  "a tf_keras SavedModel directory",
  "an .h5 file",
  "a Keras 3 .keras file",
  "a .json config with `weights`",
)


def _keras3():
  import keras

  return keras


def _tf_keras():
  import tf_keras

  return tf_keras


def flavour(model: Any) -> str:
  """Returns "tf_keras" or "keras3" for a model object.

  Raises:
    UsageError: `model` is neither a tf_keras nor a Keras 3 model.
  """
  if isinstance(model, _tf_keras().Model):
    return "tf_keras"
  if isinstance(model, _keras3().Model):
    return "keras3"
  raise UsageError(f"{type(model).__name__} is not a Keras model; pass {', '.join(SUPPORTED)}.")


def _major(version: Optional[str]) -> int:
  try:
    return int(str(version).split(".")[0])
  except ValueError:
    return 2


def _h5_keras_version(path: str) -> Optional[str]:
  import h5py

  with h5py.File(path, "r") as f:
    version = f.attrs.get("keras_version")
  return version.decode() if isinstance(version, bytes) else version


def _json_is_keras3(text: str) -> bool:
  # tf_keras configs carry "keras_version"; Keras 3 configs do not, but name
  # the module of every class ("keras", "keras.layers", ...).
  try:
    config = json.loads(text)
  except ValueError as e:
    raise UsageError(
      f"the model config is not valid JSON ({e}); write it with model.to_json()."
    ) from e
  if not isinstance(config, dict):
    raise UsageError("the model config must be a JSON object as model.to_json() writes it.")
  if "keras_version" in config:
    return _major(config["keras_version"]) >= 3
  return "module" in config


def _load(path: str, weights: Optional[str]) -> Any:
  if os.path.isdir(path):
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      raise UsageError(
        f"{path} is a directory without saved_model.pb; pass {', '.join(SUPPORTED)}."
      )
    if not os.path.exists(os.path.join(path, "keras_metadata.pb")):
      raise UsageError(
        f"{path} is a SavedModel without Keras metadata (keras_metadata.pb), "
        "so its layers cannot be cut; it may already be a Reusable "
        "SavedModel: run 'hubkit check' on it."
      )
    return _tf_keras().models.load_model(path, compile=False)
  if path.endswith(".keras"):
    return _keras3().saving.load_model(path, compile=False)
  if path.endswith(".h5"):
    if _major(_h5_keras_version(path)) >= 3:
      return _keras3().saving.load_model(path, compile=False)
    return _tf_keras().models.load_model(path, compile=False)
  if path.endswith(".json"):
    if not weights:
      raise UsageError(
        f"{path} holds only the architecture; pass its weights file too "
        "(weights=... or --weights=FILE)."
      )
    if not os.path.exists(weights):
      raise UsageError(f"weights file {weights} does not exist; check the path.")
    try:
      with open(path, encoding="utf-8") as f:
        text = f.read()
    except UnicodeDecodeError as e:
      raise UsageError(
        f"{path} is not UTF-8 text (byte {e.start}); pass the JSON of model.to_json()."
      ) from e
    keras = _keras3() if _json_is_keras3(text) else _tf_keras()
    model = keras.models.model_from_json(text)
    model.load_weights(weights)
    return model
  raise UsageError(f"cannot tell the format of {path}; pass {', '.join(SUPPORTED)}.")


def load_keras_model(model: Any, weights: Optional[str] = None) -> Any:
  """Returns a Keras model from an object or a file.

  Args:
    model: an in-memory tf_keras or Keras 3 model, or a path (tf_keras
      SavedModel directory, `.h5`, `.keras`, or `.json` config).
    weights: the weights file for a `.json` config (`.h5` for tf_keras,
      `.weights.h5` for Keras 3).

  Returns:
    The model, uncompiled when loaded from a file.

  Raises:
    UsageError: the path does not exist, its format is unknown, or it cannot
      be loaded (the reason is named).
  """
  if weights and not (isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".json")):
    raise UsageError(
      "`weights` apply only to a .json architecture; this model "
      "holds its own weights, so drop `weights`."
    )
  if not isinstance(model, (str, os.PathLike)):
    flavour(model)
    return model
  path = os.fspath(model)
  if not os.path.exists(path):
    raise UsageError(f"model path {path} does not exist; pass {', '.join(SUPPORTED)}.")
  try:
    return _load(path, weights)
  except UsageError:
    raise
  except Exception as e:
    # Keras raises many exception types for unreadable or foreign files; the
    # user needs the reason on one line, not a traceback.
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UsageError(f"cannot load a Keras model from {path}: {reason}") from e
