"""Errors hubkit raises for expected failures.

Every expected failure (a wrong path, a bad flag, a module that breaks the
interface) is a `HubkitError` whose message names the problem and the fix, so
the command line can print it on one line without a traceback.
"""


class HubkitError(Exception):
  """An expected failure, with a message that says how to fix it."""


class UsageError(HubkitError, ValueError):
  """The caller asked for something impossible: a bad flag, argument or path.

  It is a ValueError too, as Python callers expect of a bad argument.
  """
