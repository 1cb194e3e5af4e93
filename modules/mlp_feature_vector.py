"""`mlp_feature_vector`: a multi-layer perceptron feature extractor."""

from typing import Sequence

import tensorflow as tf

from hubkit.modules import _layers
from hubkit.module.reusable import ReusableModule


class MlpFeatureVector(ReusableModule):
  """Dense ReLU layers with L2 kernel penalties and dropout between them.

  Input float32 `[batch, input_dim]`, output float32 `[batch, hidden_units[-1]]`.
  Dropout applies between hidden layers, never to the output, so the feature
  vector is usable as-is by a new head.

  Example:

  ```python
  import tensorflow as tf
  from hubkit.modules.mlp_feature_vector import MlpFeatureVector

  module = MlpFeatureVector(input_dim=8, hidden_units=(16, 4))
  module(tf.zeros([2, 8])).shape  # TensorShape([2, 4])
  ```

  Args:
    input_dim: size of the input vectors.
    hidden_units: width of each dense layer; the last is the feature size.
    dropout_rate: dropout between hidden layers when training.
    l2: weight of each layer's L2 kernel penalty.
    seed: initialisation seed.
  """

  OUTPUT_NAME = "feature_vector"

  def __init__(
    self,
    input_dim: int = 64,
    hidden_units: Sequence[int] = (64, 32),
    dropout_rate: float = 0.1,
    l2: float = 1e-4,
    seed: int = 0,
  ):
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
    super().__init__(input_signatures=[tf.TensorSpec([None, input_dim], tf.float32)])
    sizes = [input_dim] + list(hidden_units)
    self.dense = [
      _layers.Dense(
        sizes[i], sizes[i + 1], name=f"dense_{i}", activation=tf.nn.relu, l2=l2, seed=seed + i
      )
      for i in range(len(hidden_units))
    ]
    self.dropout_rate = dropout_rate
    self.seed = seed

  def call(self, inputs, training):
    x = inputs
    for i, layer in enumerate(self.dense):
      if i:
        # A fixed op seed makes the masks a reproducible sequence: the same
        # fine-tuning run with the same --seed gives the same weights.
        x = _layers.dropout(x, self.dropout_rate, training, seed=self.seed + 1000 + i)
      x = layer(x)
    return x

  def regularizers(self):
    return [layer.penalty for layer in self.dense]
