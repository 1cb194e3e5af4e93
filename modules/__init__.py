"""Ready-made Reusable SavedModel modules (installed as ``hubkit.modules``).

| name                   | input                         | output             |
|------------------------|-------------------------------|--------------------|
| `mul`                  | float32 [batch, dim]          | float32 [batch, dim] |
| `mlp_feature_vector`   | float32 [batch, input_dim]    | float32 [batch, features] |
| `image_feature_vector` | float32 [batch, h, w, 3] in [0, 1] | float32 [batch, num_features] |
| `text_embedding`       | string [batch]                | float32 [batch, dim] |

May import: hubkit.module, hubkit.errors.
"""

import inspect
from typing import Any, Dict, Mapping, Optional

from hubkit.errors import UsageError
from hubkit.modules.image_feature_vector import ImageFeatureVector
from hubkit.modules.mlp_feature_vector import MlpFeatureVector
from hubkit.modules.mul import Mul
from hubkit.modules.text_embedding import TextEmbedding
from hubkit.module.reusable import ReusableModule

MODULES = {
  "mul": Mul,
  "mlp_feature_vector": MlpFeatureVector,
  "image_feature_vector": ImageFeatureVector,
  "text_embedding": TextEmbedding,
}


def config_keys(name: str) -> Dict[str, Any]:
  """Returns the configuration keys of a library module with their defaults."""
  parameters = inspect.signature(_module_class(name).__init__).parameters
  return {k: p.default for k, p in parameters.items() if k != "self"}


def _module_class(name: str) -> type:
  if name not in MODULES:
    raise UsageError(f"unknown module {name!r}; valid modules: {', '.join(MODULES)}.")
  return MODULES[name]


def build_module(name: str, **config: Any) -> ReusableModule:
  """Builds a library module by name.

  Args:
    name: one of `MODULES`.
    **config: constructor arguments of that module.

  Returns:
    The module, ready to use or export.

  Raises:
    UsageError: the name or a configuration key is unknown, or a value has
      the wrong type.
  """
  valid = config_keys(name)
  unknown = sorted(set(config) - set(valid))
  if unknown:
    raise UsageError(
      f"unknown config key(s) {', '.join(unknown)} for module {name!r}; "
      f"valid keys: {', '.join(valid)}."
    )
  for key, value in config.items():
    expected = _expected_type(valid[key])
    if expected and not isinstance(value, expected):
      raise UsageError(
        f"config key {key!r} of module {name!r} must be "
        f"{' or '.join(t.__name__ for t in expected)} (like its default "
        f"{valid[key]!r}), not {value!r}."
      )
  try:
    return _module_class(name)(**config)
  except (TypeError, ValueError) as e:
    raise UsageError(f"config {config} does not fit module {name!r}: {e}") from e


def _expected_type(default: Any) -> tuple:
  """The types a config value may have, judged by its default (() for any)."""
  if isinstance(default, bool):
    return (bool,)
  if isinstance(default, int):
    return (int,)
  if isinstance(default, float):
    return (int, float)
  if isinstance(default, str):
    return (str,)
  if isinstance(default, (list, tuple)):
    return (list, tuple)
  return ()


def export_module(
  name: str,
  export_dir: str,
  config: Optional[Mapping[str, Any]] = None,
  weights: Optional[str] = None,
  name_map: Optional[Mapping[str, str]] = None,
  overwrite: bool = False,
) -> str:
  """Builds a library module, optionally loads weights, and exports it.

  Args:
    name: one of `MODULES`.
    export_dir: the SavedModel directory to create.
    config: constructor arguments of the module.
    weights: a `.npz` file, a TF2 checkpoint or a TF1 Saver checkpoint (see
      `hubkit.load_weights`).
    name_map: maps module variable names to names in `weights`.
    overwrite: replace an existing `export_dir`.

  Returns:
    The absolute path of the export.

  Raises:
    UsageError: unknown module, config key, or weights that do not fit.
  """
  from hubkit.module import weights as weights_lib

  if name_map and not weights:
    raise UsageError(
      "a name map only applies to loaded weights (`name_map` needs `weights`); "
      "add `weights`=FILE or drop `name_map`."
    )
  config = dict(config or {})
  module = build_module(name, **config)
  if weights:
    weights_lib.load_weights(module, weights, name_map=name_map)
  return module.export(
    export_dir,
    overwrite=overwrite,
    source={"kind": "module_library", "module": name, "config": config, "weights": weights},
  )
