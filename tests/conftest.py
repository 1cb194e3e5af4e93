"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, test helpers on the path."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import tensorflow as tf  # pylint: disable=g-import-not-at-top

# Two logical CPU devices let tf.distribute.MirroredStrategy tests run on this
# machine; it must be configured before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
if _cpus and len(tf.config.list_logical_devices("CPU")) < 2:
  try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass  # Already initialised by an earlier import; tests needing 2 devices skip.
