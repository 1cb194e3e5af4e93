"""A byte-count progress bar for long downloads and packing.

It draws on stderr only when stderr is a terminal, so logs and pipes stay
clean; `enabled` forces it either way.
"""

import sys
import time
from typing import Optional, TextIO


def _megabytes(count: int) -> str:
  return f"{count / 1e6:,.1f} MB"


class Progress:
  """Counts bytes and redraws one status line at most every 0.2 s.

  Example:

  ```python
  from hubkit.progress import Progress

  with Progress("downloading m.tar.gz", total=10_000_000) as progress:
    for _ in range(10):
      progress.add(1_000_000)
  ```

  Args:
    label: what is being done.
    total: the expected number of bytes, or None when unknown.
    stream: where to draw; defaults to sys.stderr.
    enabled: draw even when not a terminal (True) or never (False); the
      default draws only on a terminal.
  """

  def __init__(
    self,
    label: str,
    total: Optional[int] = None,
    stream: Optional[TextIO] = None,
    enabled: Optional[bool] = None,
  ):
    self.label = label
    self.total = total
    self.done = 0
    self._stream = stream or sys.stderr
    self._enabled = self._stream.isatty() if enabled is None else enabled
    self._last = 0.0

  def add(self, count: int) -> None:
    """Records `count` more bytes."""
    self.done += count
    now = time.monotonic()
    if self._enabled and now - self._last >= 0.2:
      self._last = now
      self._draw()

  def _draw(self, end: str = "") -> None:
    if self.total:
      share = min(1.0, self.done / self.total)
      bar = "#" * int(share * 30)
      text = f"{self.label} [{bar:<30}] {_megabytes(self.done)} / {_megabytes(self.total)}"
    else:
      text = f"{self.label} {_megabytes(self.done)}"
    self._stream.write(f"\r{text}{end}")
    self._stream.flush()

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc_info) -> None:
    if self._enabled:
      self._draw(end="\n")
