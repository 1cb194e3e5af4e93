"""`image_feature_vector`: a small CNN following the TF Hub common image API."""

from typing import Sequence

import tensorflow as tf

from hubkit.modules import _layers
from hubkit.module.reusable import ReusableModule


class ImageFeatureVector(ReusableModule):
  """Conv + batch-norm + ReLU blocks, global average pooling, a feature vector.

  Follows the common image feature-vector API: input float32
  `[batch, height, width, 3]` with RGB values in [0, 1], output float32
  `[batch, num_features]`, no dropout on the output. Height and width are
  left undefined so any image size works.

  Example:

  ```python
  import tensorflow as tf
  from hubkit.modules.image_feature_vector import ImageFeatureVector

  module = ImageFeatureVector(filters=(8, 16), num_features=12)
  module(tf.zeros([2, 32, 32, 3])).shape  # TensorShape([2, 12])
  ```

  Args:
    filters: output channels of each conv block (each block halves the size
      after the first).
    num_features: size of the output feature vector.
    l2: weight of each kernel's L2 penalty.
    seed: initialisation seed.
  """

  OUTPUT_NAME = "feature_vector"

  def __init__(
    self, filters: Sequence[int] = (16, 32), num_features: int = 32, l2: float = 1e-4, seed: int = 0
  ):
    super().__init__(input_signatures=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    channels = [3] + list(filters)
    self.convs = [
      _layers.Conv2D(
        channels[i],
        channels[i + 1],
        name=f"conv_{i}",
        strides=1 if i == 0 else 2,
        l2=l2,
        seed=seed + i,
      )
      for i in range(len(filters))
    ]
    self.norms = [_layers.BatchNorm(channels[i + 1], name=f"bn_{i}") for i in range(len(filters))]
    self.projection = _layers.Dense(
      channels[-1],
      num_features,
      name="features",
      activation=tf.nn.relu,
      l2=l2,
      seed=seed + len(filters),
    )

  def call(self, inputs, training):
    x = inputs
    for conv, norm in zip(self.convs, self.norms):
      x = tf.nn.relu(norm(conv(x), training))
    x = tf.reduce_mean(x, axis=[1, 2])
    return self.projection(x)

  def regularizers(self):
    return [layer.penalty for layer in self.convs + [self.projection]]
