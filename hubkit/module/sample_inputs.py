"""Sample inputs for a module, made from its input signatures.

Used wherever hubkit must run a module on data it does not have: the
exporters' parity verification and the conformance checker.

Floats are uniform in [0, 1] (the range image modules expect), integers are
0 or 1 (valid ids for any lookup with two or more rows), strings are
ordinary sentences of two to five words from the module's vocabulary asset
when it has one (its special tokens, like `[PAD]` or `<unk>`, and sub-word
pieces left out), else plain English words. Edge cases (the empty string)
are a separate probe, `with_empty_strings`, so that a module which is right
for ordinary text is not judged by them. Unknown dimensions get a size that
suits the usual architectures. A fixed seed makes every run identical.
"""

import glob
import os
import re
from typing import Any, List, Optional

import numpy as np
import tensorflow as tf

from hubkit.errors import UsageError

BATCH = 4
_SPATIAL = 64
_OTHER = 8
_FALLBACK_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
# Vocabulary lines that are not words of a sentence: reserved tokens
# ([PAD], <unk>, </s>), sub-word continuations (##ing) and punctuation.
_WORD = re.compile(r"\w+", re.UNICODE)
_LINES_READ = 4096


def vocabulary_words(module_dir: str, limit: int = 64) -> List[str]:
  """Returns up to `limit` ordinary words from the first text asset that has
  any (the first token of each line, reserved tokens and sub-word pieces
  skipped)."""
  for path in sorted(glob.glob(os.path.join(module_dir, "assets", "**", "*"), recursive=True)):
    if not os.path.isfile(path):
      continue
    words: List[str] = []
    try:
      with open(path, encoding="utf-8") as f:
        for line, _ in zip(f, range(_LINES_READ)):
          # SentencePiece marks a word's start with "▁": the word is what follows.
          token = line.split()[0].lstrip("\u2581") if line.split() else ""
          if _WORD.fullmatch(token) and token not in words:
            words.append(token)
          if len(words) == limit:
            break
    except (UnicodeDecodeError, OSError):
      continue
    if words:
      return words
  return []


def with_rank(spec: tf.TensorSpec) -> tf.TensorSpec:
  """`spec`, or for an unknown rank (any shape accepted) a batch of vectors."""
  if spec.shape.rank is not None:
    return spec
  return tf.TensorSpec([None, _OTHER], spec.dtype, spec.name)


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
    sentences = [" ".join(rng.choice(pool, size=2 + i % 4)) for i in range(int(np.prod(shape)))]
    return tf.constant(np.array(sentences, dtype=object).reshape(shape))
  raise UsageError(
    f"cannot make test inputs of dtype {spec.dtype.name}; pass "
    "`inputs`=FILE.npz with arrays for every input."
  )


def with_empty_strings(inputs: Any) -> Optional[Any]:
  """`inputs` with the last element of every string tensor replaced by the
  empty string (text a user may well send); None when there is no string
  input."""
  flat = tf.nest.flatten(inputs)
  if not any(tf.is_tensor(t) and t.dtype == tf.string and tf.size(t) > 0 for t in flat):
    return None

  def empty_last(t):
    if not (tf.is_tensor(t) and t.dtype == tf.string) or tf.size(t) == 0:
      return t
    values = t.numpy().reshape(-1)
    values[-1] = b""
    return tf.constant(values.reshape(t.shape))

  return tf.nest.map_structure(empty_last, inputs)


def argument_value(spec: tf.TensorSpec) -> tf.Tensor:
  """A neutral value for a hyper-parameter argument: ones (True, "" for
  strings), unknown dimensions taken as 1."""
  shape = [] if spec.shape.rank is None else [d or 1 for d in spec.shape.as_list()]
  if spec.dtype == tf.string:
    return tf.fill(shape, "")
  if spec.dtype == tf.bool:
    return tf.fill(shape, True)
  return tf.ones(shape, spec.dtype)


def make_inputs(signature: Any, module_dir: Optional[str] = None, seed: int = 0) -> Any:
  """Returns a batch of sample inputs matching `signature` (a TensorSpec nest).

  Args:
    signature: a TensorSpec or a list/dict nest of them.
    module_dir: a SavedModel directory whose vocabulary asset supplies words
      for string inputs.
    seed: makes the inputs repeatable.
  """
  rng = np.random.default_rng(seed)
  words = vocabulary_words(module_dir) if module_dir else []
  return tf.nest.map_structure(lambda s: _one(s, words, rng), signature)
