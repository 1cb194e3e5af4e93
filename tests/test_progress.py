"""Tests for the progress bar: drawn on a terminal, silent otherwise."""

import io

from hubkit.utils.progress import Progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_draws_on_a_terminal_with_total_and_ends_the_line():
  stream = _Terminal()
  with Progress("downloading m", total=2_000_000, stream=stream) as progress:
    progress.add(1_000_000)
    progress.add(1_000_000)
  text = stream.getvalue()
  assert text.startswith("\rdownloading m [") and text.endswith("2.0 MB / 2.0 MB\n")
  assert progress.done == 2_000_000


def test_quiet_when_not_a_terminal_and_unknown_total_on_request():
  pipe = io.StringIO()
  with Progress("packing", stream=pipe) as progress:
    progress.add(5)
  assert pipe.getvalue() == "" and progress.done == 5
  forced = io.StringIO()
  with Progress("packing", stream=forced, enabled=True) as progress:
    progress.add(3_000_000)
  assert forced.getvalue().endswith("packing 3.0 MB\n")
