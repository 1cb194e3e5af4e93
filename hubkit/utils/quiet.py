"""Silencing TensorFlow's C++ chatter on file descriptor 2.

TensorFlow's core and the LiteRT converter write notes and MLIR diagnostics
straight to file descriptor 2, bypassing Python logging; they would bury the
one-line messages hubkit promises. The diagnostics that matter reach Python
as exception text, which still propagates.

Example:

  with quiet.muted_stderr():
    import tensorflow as tf
"""

import contextlib
import os
from typing import Iterator


@contextlib.contextmanager
def muted_stderr() -> Iterator[None]:
  """Points file descriptor 2 at /dev/null for the block."""
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def start_tensorflow(logical_cpus: int) -> None:
  """Imports TensorFlow and initialises its devices with stderr muted.

  TensorFlow's C++ core writes start-up notes (oneDNN, CUDA probing) straight
  to file descriptor 2 before any logging is configured; no environment
  variable silences all of them, and they would bury the one-line messages
  this tool promises. Python exceptions still propagate.

  Args:
    logical_cpus: split the CPU into this many logical devices (commands
      that exercise tf.distribute need two); 1 leaves it as is; 0 does not
      initialise devices at all (MultiWorkerMirroredStrategy must configure
      collective ops first).
  """
  with muted_stderr():
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    if logical_cpus > 1 and cpus:
      tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus
      )
    if logical_cpus:
      tf.config.list_logical_devices()
  tf.get_logger().setLevel("ERROR")
