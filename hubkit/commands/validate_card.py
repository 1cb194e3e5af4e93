"""Validates a tfhub.dev markdown card the way the tfhub.dev validator did:
first line, description, required keys (asset-path, task, fine-tunable,
format), allowed values, one asset-path ending in .tar.gz.

Exit code 0 when valid, 1 when not (every problem is listed with its line).
"""

from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()


def main(args: List[str]) -> int:
  path = _common.one_positional("validate-card", "card file", args)
  from hubkit.registry import card

  problems = card.validate_card(path)
  for problem in problems:
    print(f"{path}:{problem}")
  print(f"{path}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
  return 1 if problems else 0
