"""Test inputs for a module, made from its traced input signatures.

Floats are uniform in [0, 1] (the range image modules expect), integers are
0 or 1 (valid ids for any lookup with two or more rows), strings are short
sentences from the module's vocabulary asset when it has one (plus an empty
string and an unknown word). Unknown dimensions get a size that suits the
usual architectures. A fixed seed makes every run identical.
"""

import glob
import os
from typing import Any, List

import numpy as np
import tensorflow as tf

from hubkit.errors import UsageError
from hubkit.reusable import nest_paths

BATCH = 4
_SPATIAL = 64
_OTHER = 8
_FALLBACK_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]


def vocabulary_words(module_dir: str, limit: int = 64) -> List[str]:
  """Returns up to `limit` tokens from the first text asset, if any."""
  for path in sorted(glob.glob(os.path.join(module_dir, "assets", "**", "*"), recursive=True)):
    if not os.path.isfile(path):
      continue
    try:
      with open(path, encoding="utf-8") as f:
        words = [line.split()[0] for line, _ in zip(f, range(limit)) if line.split()]
    except (UnicodeDecodeError, OSError):
      continue
    if words:
      return words
  return []


def _dims(spec: tf.TensorSpec) -> List[int]:
  shape = spec.shape.as_list()
  # Rank-4 inputs with unknown height/width are images: give them room for
  # a few strided convolutions.
  size = _SPATIAL if len(shape) == 4 else _OTHER
  return [BATCH] + [d if d is not None else size for d in shape[1:]]


def _one(spec: tf.TensorSpec, words: List[str], rng: np.random.Generator) -> tf.Tensor:
  shape = _dims(spec)
  if spec.dtype.is_floating:
    return tf.constant(rng.uniform(0.0, 1.0, shape), spec.dtype)
  if spec.dtype.is_integer:
    return tf.constant(rng.integers(0, 2, shape), spec.dtype)
  if spec.dtype == tf.bool:
    return tf.constant(rng.integers(0, 2, shape).astype(bool))
  if spec.dtype == tf.string:
    pool = words or _FALLBACK_WORDS
    sentences = [" ".join(rng.choice(pool, size=1 + i % 3)) for i in range(int(np.prod(shape)))]
    if sentences:
      sentences[-1] = ""  # empty text is a legitimate input
      if len(sentences) > 1:
        sentences[-2] = "zzqxunknownword " + sentences[-2]
    return tf.constant(np.array(sentences, dtype=object).reshape(shape))
  raise UsageError(f"cannot make test inputs of dtype {spec.dtype.name}; pass "
                   "--inputs=FILE.npz with arrays for every input.")


def make_inputs(signature: Any, module_dir: str, seed: int = 0) -> Any:
  """Returns a batch of test inputs matching `signature` (a TensorSpec nest)."""
  rng = np.random.default_rng(seed)
  words = vocabulary_words(module_dir)
  return tf.nest.map_structure(lambda s: _one(s, words, rng), signature)


def input_names(signature: Any) -> List[str]:
  """The .npz key of each input: "inputs" for one tensor, else its nest path."""
  if not tf.nest.is_nested(signature):
    return ["inputs"]
  return ["/".join(str(p) for p in path) for path in nest_paths(signature)]


def load_inputs(path: str, signature: Any) -> Any:
  """Reads user-supplied inputs from an .npz keyed by `input_names(signature)`.

  Raises:
    UsageError: the file is unreadable or lacks an input.
  """
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {k: data[k] for k in data.files}
  except (OSError, ValueError) as e:
    raise UsageError(f"cannot read --inputs file {path} ({e}); write it with "
                     "np.savez(path, inputs=array).") from e
  names = input_names(signature)
  if len(names) == 1 and len(arrays) == 1:
    arrays = {names[0]: next(iter(arrays.values()))}
  missing = [n for n in names if n not in arrays]
  if missing:
    raise UsageError(f"--inputs file {path} lacks {', '.join(missing)}; it has "
                     f"{', '.join(sorted(arrays)) or 'nothing'}.")
  flat = [tf.constant(arrays[n], dtype=s.dtype if s.dtype != tf.string else None)
          for n, s in zip(names, tf.nest.flatten(signature))]
  return tf.nest.pack_sequence_as(signature, flat)
