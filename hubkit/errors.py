"""Errors hubkit raises for expected failures.

Every expected failure (a wrong path, a bad flag, a module that breaks the
interface) is a `HubkitError` whose message names the problem and the fix, so
the command line can print it on one line without a traceback.

The classes also derive from the built-in exception a tensorflow_hub caller
already catches for the same failure: bad arguments are `ValueError`s, I/O
failures (a missing path, a download that broke off, an archive that is not
one) are `OSError`s, so code written for `hub.resolve` / `hub.load` handles
hubkit's errors unchanged.
"""


class HubkitError(Exception):
  """An expected failure, with a message that says how to fix it."""


class UsageError(HubkitError, ValueError):
  """The caller asked for something impossible: a bad flag, argument or path.

  It is a ValueError too, as Python callers expect of a bad argument.
  """


class NotFoundError(UsageError, FileNotFoundError):
  """A path or handle names nothing that exists (hub raises IOError here)."""


class ArchiveError(UsageError, OSError):
  """An archive is not a readable tar (hub: "does not appear to be a valid module")."""


class FetchError(HubkitError, OSError):
  """A module could not be fetched: the server, the network or a checksum failed."""
