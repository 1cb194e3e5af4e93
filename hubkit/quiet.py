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
