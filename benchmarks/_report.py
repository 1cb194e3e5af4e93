"""Shared output of the benchmark scripts: a printed table and a JSON file."""

import json
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from hubkit.utils.atomic import atomic_file

# (header, key, format spec) per column, e.g. ("ratio", "ratio", ">7.3f").
Column = Tuple[str, str, str]


def report(
  columns: Sequence[Column],
  rows: List[Dict[str, Any]],
  note: str,
  output: str,
  payload: Mapping[str, Any],
) -> None:
  """Prints `rows` as a table with a closing note and writes `payload` as JSON."""
  widths = [
    max(len(header), len(format(rows[0][key], spec)) if rows else 0)
    for header, key, spec in columns
  ]
  header = "  ".join(
    h.rjust(w) if i else h.ljust(w) for i, ((h, _, _), w) in enumerate(zip(columns, widths))
  )
  print(header)
  print("-" * len(header))
  for row in rows:
    print(
      "  ".join(
        format(row[key], spec).rjust(w) if i else format(row[key], spec).ljust(w)
        for i, ((_, key, spec), w) in enumerate(zip(columns, widths))
      )
    )
  print(note)
  with atomic_file(output, "w") as f:
    json.dump({**payload, "cpus": os.cpu_count(), "rows": rows}, f, indent=2)
  print(f"wrote {output}")
