"""Small helpers shared by the sub-commands."""

from typing import List, Sequence

from hubkit.errors import UsageError


def no_positional(name: str, args: Sequence[str]) -> None:
  """Refuses stray positional arguments (usually a typo in a flag)."""
  if args:
    raise UsageError(
      f"unexpected argument(s) {' '.join(args)}; 'hubkit {name}' "
      "takes flags only (did you forget '--'?)."
    )


def one_positional(name: str, what: str, args: Sequence[str]) -> str:
  """Returns the single positional argument a command takes."""
  if len(args) != 1:
    raise UsageError(
      f"'hubkit {name}' takes exactly one {what}; got {len(args)} ({' '.join(args) or 'none'})."
    )
  return args[0]


def required(flag_values, *names: str) -> List[str]:
  """Returns the values of required flags, or names the missing ones."""
  missing = [n for n in names if flag_values[n].value in (None, "")]
  if missing:
    raise UsageError("missing required flag(s): " + ", ".join(f"--{n}" for n in missing) + ".")
  return [flag_values[n].value for n in names]
