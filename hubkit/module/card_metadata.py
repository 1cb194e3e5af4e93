"""The metadata of a tfhub.dev model card: its `<!-- key: value -->` lines.

A card says what its module is for (`task`, or `module-type` in older
cards); the checker reads that to know which Common SavedModel API contract
to hold the module to, the registry to validate and render cards
(`hubkit.registry.card`).
"""

import re
from typing import Dict, List, Tuple

METADATA_LINE = re.compile(r"^<!--\s*([a-z-]+)\s*:\s*(.*?)\s*-->$")


def card_metadata(text: str) -> Tuple[str, Dict[str, List[str]], str]:
  """Splits a card into its description, its metadata and the Markdown after.

  Returns:
    (the one-line description, {key: [values]} from the `<!-- key: value -->`
    lines before the first heading, the card without those lines).
  """
  lines = text.splitlines()
  description = next(
    (line.strip() for line in lines[1:] if line.strip() and not line.lstrip().startswith("<!--")),
    "",
  )
  values: Dict[str, List[str]] = {}
  body = []
  in_header = True
  for number, line in enumerate(lines):
    if number and line.startswith("#"):
      in_header = False
    match = METADATA_LINE.match(line.strip()) if in_header else None
    if match:
      values.setdefault(match.group(1), []).append(match.group(2))
    else:
      body.append(line)
  return description if not description.startswith("#") else "", values, "\n".join(body)
