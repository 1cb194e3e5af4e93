"""Card flags shared by `hubkit pack` and `hubkit publish`."""

from typing import Dict, List, Optional

from absl import flags

from hubkit.registry import card
from hubkit.registry import tfhub_tags


def define(flag_values: flags.FlagValues) -> None:
  """Defines the card metadata flags on a command's FlagValues."""
  flags.DEFINE_string(
    "description", None, "One-line description for the card.", flag_values=flag_values
  )
  flags.DEFINE_enum(
    "task",
    None,
    card.TASKS,
    "Card task (default: guessed from the inputs).",
    flag_values=flag_values,
  )
  flags.DEFINE_enum(
    "fine_tunable",
    None,
    ["true", "false"],
    "Card fine-tunable (default: true when the module has trainable variables).",
    flag_values=flag_values,
  )
  flags.DEFINE_enum(
    "format", "saved_model_2", card.FORMATS, "Card format.", flag_values=flag_values
  )
  # Values from tfhub.dev's tag lists, so that the card validates there.
  flags.DEFINE_multi_enum(
    "network_architecture",
    [],
    tfhub_tags.NETWORK_ARCHITECTURE,
    "Card network-architecture (tfhub.dev id, e.g. resnet, bert, other).",
    flag_values=flag_values,
  )
  flags.DEFINE_multi_enum(
    "dataset",
    [],
    tfhub_tags.DATASET,
    "Card dataset (tfhub.dev id, e.g. imagenet, wikipedia, other).",
    flag_values=flag_values,
  )
  flags.DEFINE_multi_enum(
    "language",
    [],
    tfhub_tags.LANGUAGE,
    "Card language (ISO 639-1, e.g. en).",
    flag_values=flag_values,
  )
  flags.DEFINE_enum(
    "license", None, card.LICENSES, "Card license (tfhub.dev id).", flag_values=flag_values
  )


def given(flag_values: flags.FlagValues) -> List[str]:
  """The card flags set on the command line (to refuse them where no card is written)."""
  names = (
    "description",
    "task",
    "fine_tunable",
    "format",
    "network_architecture",
    "dataset",
    "language",
    "license",
  )
  return [f"--{name}" for name in names if flag_values[name].present]


def fine_tunable(flag_values: flags.FlagValues) -> Optional[bool]:
  value = flag_values.fine_tunable
  return None if value is None else value == "true"


def extra(flag_values: flags.FlagValues) -> Dict[str, List[str]]:
  """The optional card metadata given on the command line."""
  result = {
    "network-architecture": flag_values.network_architecture,
    "dataset": flag_values.dataset,
    "language": flag_values.language,
    "license": [flag_values.license] if flag_values.license else [],
  }
  return {k: v for k, v in result.items() if v}
