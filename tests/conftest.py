"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, test helpers on the path."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `hubkit check` records verdicts per module digest; keep the suite's out of ~/.cache.
os.environ.setdefault("HUBKIT_CHECK_RECORDS", tempfile.mkdtemp(prefix="hubkit_check_records_"))
sys.path.insert(0, os.path.dirname(__file__))

import tensorflow as tf

# Two logical CPU devices let tf.distribute.MirroredStrategy tests run on this
# machine; it must be configured before TensorFlow initialises its devices.
# (Listing logical devices would initialise them, so configure first.)
_cpus = tf.config.list_physical_devices("CPU")
if _cpus and tf.config.get_logical_device_configuration(_cpus[0]) is None:
  tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
assert len(tf.config.list_logical_devices("CPU")) >= 2, "tests need two logical CPUs"
