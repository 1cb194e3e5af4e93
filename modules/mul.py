"""`mul`: the minimal Reusable SavedModel, y = x * v."""

import tensorflow as tf

from hubkit.module.reusable import ReusableModule


class Mul(ReusableModule):
  """Multiplies its input element-wise by a trainable vector `v`.

  Example:

  ```python
  import tensorflow as tf
  from hubkit.modules.mul import Mul

  module = Mul(dim=3, l2=0.01)
  module(tf.ones([2, 3]))  # == [[1., 1., 1.], [1., 1., 1.]]
  module.regularization_losses[0]()  # 0.01 * sum(v**2) == 0.03
  ```

  Args:
    dim: the size of the last input dimension.
    l2: weight of the L2 regularization loss on `v`.
  """

  def __init__(self, dim: int = 4, l2: float = 0.01):
    super().__init__(input_signatures=[tf.TensorSpec([None, dim], tf.float32)])
    self.v = tf.Variable(tf.ones([dim]), name="v")
    self.l2 = l2

  def call(self, inputs, training):
    del training  # Same behaviour in both modes; both traces still exist.
    return inputs * self.v

  def regularizers(self):
    return [lambda: self.l2 * tf.reduce_sum(tf.square(self.v))]
