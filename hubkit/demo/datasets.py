"""Small real data for demos, tests and benchmarks, available offline.

scikit-learn ships the UCI handwritten digits inside its package, so no
download is needed. Without scikit-learn, a deterministic synthetic stand-in
with the same shapes keeps the demo runnable.
"""

from typing import Tuple

import numpy as np


def _synthetic_digits(seed: int) -> Tuple[np.ndarray, np.ndarray]:
  # Ten fixed class prototypes plus noise: learnable, like the real digits.
  rng = np.random.default_rng(seed)
  prototypes = rng.uniform(0.0, 1.0, size=(10, 64))
  labels = np.repeat(np.arange(10), 180)
  images = prototypes[labels] + rng.normal(0.0, 0.25, size=(labels.size, 64))
  return np.clip(images, 0.0, 1.0).astype(np.float32), labels.astype(np.int64)


def load_digits(seed: int = 0) -> Tuple[np.ndarray, np.ndarray, str]:
  """Returns 8x8 digit images as float32 [n, 64] in [0, 1], int64 labels, and a name.

  Args:
    seed: shuffles the examples (and seeds the synthetic fallback).

  Returns:
    (features, labels, source) where source is "sklearn.load_digits" or
    "synthetic" when scikit-learn is not installed.
  """
  try:
    from sklearn import datasets
  except ImportError:
    images, labels = _synthetic_digits(seed)
    source = "synthetic"
  else:
    bunch = datasets.load_digits()
    images = (bunch.data / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    source = "sklearn.load_digits"
  order = np.random.default_rng(seed).permutation(len(labels))
  return images[order], labels[order], source
