"""Plain-TensorFlow building blocks for the module library.

The library modules avoid Keras on purpose: a low-level module has no Keras
version to match, and every variable gets a stable, slash-separated name
(`dense_0/kernel`) that doubles as its key in `.npz` weight files.
"""

from typing import Optional

import tensorflow as tf


def _glorot(shape, fan_in: int, fan_out: int, seed: int) -> tf.Tensor:
  limit = (6.0 / (fan_in + fan_out)) ** 0.5
  return tf.random.stateless_uniform(shape, seed=[seed, 0], minval=-limit, maxval=limit)


class Dense(tf.Module):
  """A fully connected layer with an optional L2 kernel penalty."""

  def __init__(
    self, in_units: int, units: int, name: str, activation=None, l2: float = 0.0, seed: int = 0
  ):
    super().__init__(name=name)
    self.kernel = tf.Variable(
      _glorot([in_units, units], in_units, units, seed), name=f"{name}/kernel"
    )
    self.bias = tf.Variable(tf.zeros([units]), name=f"{name}/bias")
    self.activation = activation
    self.l2 = l2

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    y = tf.matmul(x, self.kernel) + self.bias
    return self.activation(y) if self.activation else y

  def penalty(self) -> tf.Tensor:
    return self.l2 * tf.reduce_sum(tf.square(self.kernel))


class Conv2D(tf.Module):
  """A 'SAME'-padded 2D convolution without bias (batch norm follows it)."""

  def __init__(
    self,
    in_channels: int,
    filters: int,
    name: str,
    kernel_size: int = 3,
    strides: int = 1,
    l2: float = 0.0,
    seed: int = 0,
  ):
    super().__init__(name=name)
    shape = [kernel_size, kernel_size, in_channels, filters]
    fan_in = kernel_size * kernel_size * in_channels
    self.kernel = tf.Variable(
      _glorot(shape, fan_in, kernel_size * kernel_size * filters, seed), name=f"{name}/kernel"
    )
    self.strides = strides
    self.l2 = l2

  def __call__(self, x: tf.Tensor) -> tf.Tensor:
    return tf.nn.conv2d(x, self.kernel, strides=self.strides, padding="SAME")

  def penalty(self) -> tf.Tensor:
    return self.l2 * tf.reduce_sum(tf.square(self.kernel))


class BatchNorm(tf.Module):
  """Batch normalization whose moving statistics change only when training.

  With training=True it normalizes with the batch moments and updates the
  moving averages in place (the assignments are part of the traced call, so
  a consumer fine-tuning through hub.KerasLayer updates them too); with
  training=False it only reads them.
  """

  def __init__(self, channels: int, name: str, momentum: float = 0.99, epsilon: float = 1e-3):
    super().__init__(name=name)
    self.gamma = tf.Variable(tf.ones([channels]), name=f"{name}/gamma")
    self.beta = tf.Variable(tf.zeros([channels]), name=f"{name}/beta")
    self.moving_mean = tf.Variable(
      tf.zeros([channels]), trainable=False, name=f"{name}/moving_mean"
    )
    self.moving_variance = tf.Variable(
      tf.ones([channels]), trainable=False, name=f"{name}/moving_variance"
    )
    self.momentum = momentum
    self.epsilon = epsilon

  def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
    if training:
      axes = list(range(len(x.shape) - 1))
      mean, variance = tf.nn.moments(x, axes)
      decay = 1.0 - self.momentum
      self.moving_mean.assign_sub((self.moving_mean - mean) * decay)
      self.moving_variance.assign_sub((self.moving_variance - variance) * decay)
    else:
      mean, variance = self.moving_mean, self.moving_variance
    return tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)


def dropout(x: tf.Tensor, rate: float, training: bool, seed: Optional[int] = None) -> tf.Tensor:
  """Applies dropout only in training; inference stays deterministic."""
  if training and rate > 0.0:
    return tf.nn.dropout(x, rate=rate, seed=seed)
  return x
