"""Modules the interface allows that hubkit's own exporters never write:
`training` is optional, and `__call__` may take hyper-parameters after
`inputs`. Built the way the TF Hub guide builds them."""

import tensorflow as tf


class MyMulModel(tf.train.Checkpoint):
  """The TF Hub guide's example: no `training` argument, any input shape."""

  def __init__(self, v_init):
    super().__init__()
    self.v = tf.Variable(v_init)
    self.variables = [self.v]
    self.trainable_variables = [self.v]
    self.regularization_losses = [tf.function(input_signature=[])(lambda: 0.001 * self.v**2)]

  @tf.function(input_signature=[tf.TensorSpec(shape=None, dtype=tf.float32)])
  def __call__(self, inputs):
    return tf.multiply(inputs, self.v)


class ScaledDense(tf.train.Checkpoint):
  """A hyper-parameter `a` as the second positional parameter, then `training`."""

  def __init__(self, with_training: bool):
    super().__init__()
    self.w = tf.Variable([[1.0], [2.0], [3.0]])
    self.variables = [self.w]
    self.trainable_variables = [self.w]
    self.regularization_losses = []
    spec, scale = tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([], tf.float32)
    if with_training:
      self.__call__ = tf.function(self._call_with_training)
      for training in (True, False):
        self.__call__.get_concrete_function(spec, scale, training=training)
    else:
      self.__call__ = tf.function(self._call, input_signature=[spec, scale])

  def _call(self, inputs, a):
    return tf.matmul(inputs, self.w) * a

  def _call_with_training(self, inputs, a, training=False):
    del training
    return tf.matmul(inputs, self.w) * a


def my_mul_model(path):
  tf.saved_model.save(MyMulModel(2.0), path)
  return path


def hyper_parameter(path):
  tf.saved_model.save(ScaledDense(with_training=False), path)
  return path


def hyper_parameter_and_training(path):
  tf.saved_model.save(ScaledDense(with_training=True), path)
  return path


CANONICAL = {
  "my_mul_model": my_mul_model,
  "hyper_parameter": hyper_parameter,
  "hyper_parameter_and_training": hyper_parameter_and_training,
}
