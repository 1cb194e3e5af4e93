"""Small helpers shared by the sub-commands."""

from typing import List, Sequence

from absl import flags

from hubkit.errors import UsageError


def define_safety_flags(flag_values: flags.FlagValues) -> None:
  """Defines --unsafe and --allow_ops, for commands that load modules."""
  flags.DEFINE_bool(
    "unsafe",
    False,
    "Load without the op scan: only for modules you trust.",
    flag_values=flag_values,
  )
  flags.DEFINE_list(
    "allow_ops",
    [],
    "Op types you reviewed and allow beyond the allow-list.",
    flag_values=flag_values,
  )


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
