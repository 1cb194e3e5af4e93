"""What a large module's check does about memory.

On a large module most of a check's time that grows with size is spent
touching fresh memory (page faults for the module's copies, gradients and
optimizer slots), not computing: ~1.5-2 s per GB on this project's 2-CPU
machine against ~0.3 s per GB for one bulk fill. TensorFlow's CPU allocator
(a best-fit pool with oneDNN, TensorFlow's default on x86) keeps what it
once held, so the checker

  * reserves the pool a large module's rules will need in one bulk fill on a
    second thread, while the confined child finishes starting up, and
  * collects the reference cycles (Keras models, optimizers) a rule leaves,
    so that the next rule reuses that memory instead of touching more.

Neither changes what any rule computes or concludes.
"""

import glob
import os
import threading
from typing import Optional

# From this many bytes of variables on, a module counts as large: collecting
# a rule's garbage (about 0.15 s) and reserving memory pay for themselves.
LARGE_MODULE_BYTES = 64 << 20
# The pool a check needs, per byte of variables: measured peak 2.2-2.5 GB on
# 336 MB of variables (the checker's copy, a consumer's copy, gradients incl.
# regularization terms, Adam's two slots and its temporaries).
_RESERVE_PER_VARIABLE_BYTE = 6


def variable_file_bytes(module_dir: str) -> int:
  """Bytes of a SavedModel's variable data files (0 where there are none)."""
  total = 0
  for path in glob.glob(os.path.join(glob.escape(module_dir), "variables", "variables.data-*")):
    try:
      total += os.path.getsize(path)
    except OSError:
      pass  # judged by the rules, not here
  return total


class Reservation:
  """A bulk fill of TensorFlow's CPU memory pool, running on its own thread.

  Attributes:
    size: the bytes being reserved.
  """

  def __init__(self, size: int):
    self.size = size
    self._thread = threading.Thread(target=self._fill, name="hubkit-reserve", daemon=True)
    self._thread.start()

  def _fill(self) -> None:
    import tensorflow as tf

    try:
      with tf.device("/CPU:0"):
        tf.zeros([self.size], tf.uint8)
    except (tf.errors.OpError, MemoryError):
      pass  # the rules allocate as they go, as without a reservation

  def wait(self) -> None:
    """Returns once the pool holds the reserved bytes (or the fill failed)."""
    self._thread.join()


def reserve(module_dir: str) -> Optional[Reservation]:
  """Starts growing TensorFlow's CPU memory pool for checking `module_dir`.

  Call after TensorFlow has started, and `wait()` before the rules run.
  Small modules, and allocators that do not keep freed memory, are left
  alone; at most half of the memory now available is reserved.

  Args:
    module_dir: the SavedModel about to be checked.

  Returns:
    The running reservation, or None when nothing is reserved.
  """
  variable_bytes = variable_file_bytes(module_dir)
  if variable_bytes < LARGE_MODULE_BYTES:
    return None
  import tensorflow as tf

  try:
    tf.config.experimental.get_memory_info("CPU:0")
  except (ValueError, RuntimeError):
    return None  # not a pooling allocator: what it frees goes back to the OS
  available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  return Reservation(min(_RESERVE_PER_VARIABLE_BYTE * variable_bytes, available // 2))
