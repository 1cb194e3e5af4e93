"""Models the benchmarks build, identically in tf_keras and Keras 3."""

from typing import Any, Sequence


def dense_stack(lib: Any, input_dim: int, units: Sequence[int]) -> Any:
  """ReLU Dense layers with L2 kernel regularizers, built with `lib` (tf_keras or keras)."""
  inputs = lib.Input((input_dim,))
  x = inputs
  for i, width in enumerate(units):
    x = lib.layers.Dense(
      width, activation="relu", name=f"dense_{i}", kernel_regularizer=lib.regularizers.L2(1e-5)
    )(x)
  return lib.Model(inputs, x)
