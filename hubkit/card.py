"""Documentation cards: tfhub.dev markdown and Kaggle instance metadata.

A tfhub.dev card starts with `# Module publisher/name/version`, then a one-line
description, then `<!-- key: value -->` metadata lines, then free markdown.
`validate_card` checks what tensorflow/tfhub.dev's validator checked for
SavedModel cards: the first line, the description, required keys present
once, allowed values, and exactly one asset-path ending in `.tar.gz`.
"""

import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from hubkit.errors import UsageError

FORMATS = ("hub", "saved_model", "saved_model_2")
TASKS = (
  "audio-embedding",
  "audio-event-classification",
  "audio-speech-to-text",
  "image-classification",
  "image-feature-vector",
  "image-object-detection",
  "image-segmentation",
  "image-style-transfer",
  "image-generator",
  "text-classification",
  "text-embedding",
  "text-generation",
  "text-language-model",
  "text-question-answering",
  "text-retrieval-question-answering",
  "text-segmentation",
  "text-to-mel",
  "video-classification",
  "video-generation",
  "feature-vector",
  "other",
)
LICENSES = (
  "Apache-2.0",
  "MIT",
  "BSD-2-Clause",
  "BSD-3-Clause",
  "CC-BY-4.0",
  "CC-BY-SA-4.0",
  "CC0-1.0",
  "GPL-3.0",
  "custom",
)
KAGGLE_METADATA_NAME = "model-instance-metadata.json"
REQUIRED = ("asset-path", "task", "fine-tunable", "format")
REPEATABLE = ("task", "dataset", "language", "network-architecture")
OPTIONAL = ("network-architecture", "dataset", "language", "license", "colab")
_FIRST_LINE = re.compile(r"^# Module ([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_.-]*)/([1-9][0-9]*)$")
_METADATA = re.compile(r"^<!--\s*([a-z-]+)\s*:\s*(.*?)\s*-->$")
HANDLE = re.compile(r"^([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_.-]*)/([1-9][0-9]*)$")


def parse_handle(handle: str) -> Tuple[str, str, str]:
  """Splits "publisher/name/version" and validates each part.

  Raises:
    UsageError: the handle is malformed.
  """
  match = HANDLE.match(handle or "")
  if not match:
    raise UsageError(
      f"handle {handle!r} must be publisher/name/version: lower-case letters, "
      "digits, '-' or '_' and a positive integer version, e.g. "
      "hubkit/digits-features/1."
    )
  return match.group(1), match.group(2), match.group(3)


def default_description(record: Optional[Mapping[str, Any]]) -> str:
  """A card's one-line description made from a module's hubkit.json."""
  kind = ((record or {}).get("source") or {}).get("kind", "a model")
  return f"A Reusable SavedModel exported by hubkit from {kind}."


def guess_task(record: Optional[Mapping[str, Any]]) -> str:
  """Guesses the task from the input specs in hubkit.json."""
  inputs = (record or {}).get("inputs") or [None]
  spec = inputs[0] if isinstance(inputs[0], dict) and "dtype" in inputs[0] else None
  if spec and spec["dtype"] == "string":
    return "text-embedding"
  if spec and spec.get("shape") and len(spec["shape"]) == 4 and spec["shape"][-1] == 3:
    return "image-feature-vector"
  return "feature-vector"


def render_card(
  handle: str,
  description: str,
  asset_path: str,
  task: str,
  fine_tunable: bool = True,
  model_format: str = "saved_model_2",
  extra: Optional[Mapping[str, Iterable[str]]] = None,
  record: Optional[Mapping[str, Any]] = None,
  changes: Sequence[str] = (),
) -> str:
  """Returns a tfhub.dev markdown card.

  Args:
    handle: publisher/name/version.
    description: one line.
    asset_path: where the `.tar.gz` archive is hosted.
    task: one of TASKS.
    fine_tunable: whether the module exposes trainable variables.
    model_format: one of FORMATS.
    extra: optional metadata (network-architecture, dataset, language,
      license, colab), each a list of values.
    record: the module's hubkit.json, used for the details section.
    changes: lines for a "Changes" section (what `hubkit diff` found against
      the previous version).
  """
  parse_handle(handle)
  lines = [f"# Module {handle}", " ".join(description.split()), ""]
  lines.append(f"<!-- asset-path: {asset_path} -->")
  lines.append(f"<!-- task: {task} -->")
  lines.append(f"<!-- fine-tunable: {'true' if fine_tunable else 'false'} -->")
  lines.append(f"<!-- format: {model_format} -->")
  for key, values in (extra or {}).items():
    for value in values:
      lines.append(f"<!-- {key}: {value} -->")
  lines += ["", "## Overview", "", " ".join(description.split()), ""]
  if record:
    lines += [
      "## Details",
      "",
      f"* Inputs: `{json.dumps(record.get('inputs'))}`",
      f"* Outputs: `{json.dumps(record.get('outputs'))}`",
      f"* Parameters: {record.get('num_parameters', 'unknown')}",
      f"* Exported with hubkit {record.get('hubkit_version')} and TensorFlow "
      f"{record.get('tensorflow_version')}",
    ]
    for package, names in (record.get("op_packages") or {}).items():
      lines.append(f"* Needs `{package}` for ops beyond core TensorFlow: {', '.join(names)}")
    lines.append("")
  if changes:
    lines += ["## Changes", "", *(f"* {line}" for line in changes), ""]
  lines += [
    "## Usage",
    "",
    "```python",
    "import tensorflow_hub as hub",
    "",
    f'layer = hub.KerasLayer("{asset_path}", trainable={bool(fine_tunable)})',
    "```",
    "",
  ]
  return "\n".join(lines)


def validate_card_text(text: str) -> List[str]:
  """Returns every problem of a card, each prefixed with its line number."""
  lines = text.splitlines()
  problems = []
  if not lines or not _FIRST_LINE.match(lines[0].strip()):
    problems.append(
      "line 1: must be '# Module publisher/name/version' (lower-case publisher "
      "and name, integer version)"
    )
  if len(lines) < 2 or not lines[1].strip() or lines[1].lstrip().startswith(("<!--", "#")):
    problems.append("line 2: must be a one-line description")
  seen: Dict[str, List[int]] = {}
  for number, line in enumerate(lines, start=1):
    match = _METADATA.match(line.strip())
    if not match:
      continue
    key, value = match.group(1), match.group(2)
    seen.setdefault(key, []).append(number)
    if key not in REQUIRED + OPTIONAL:
      problems.append(
        f"line {number}: unknown metadata key {key!r}; valid keys: {', '.join(REQUIRED + OPTIONAL)}"
      )
    elif key == "asset-path" and not value.endswith(".tar.gz"):
      problems.append(f"line {number}: asset-path must end in .tar.gz, got {value!r}")
    elif key == "format" and value not in FORMATS:
      problems.append(f"line {number}: format {value!r} is not one of {', '.join(FORMATS)}")
    elif key == "fine-tunable" and value not in ("true", "false"):
      problems.append(f"line {number}: fine-tunable must be true or false, got {value!r}")
    elif key == "task" and value not in TASKS:
      problems.append(f"line {number}: task {value!r} is not one of {', '.join(TASKS)}")
    elif key == "license" and value not in LICENSES:
      problems.append(f"line {number}: license {value!r} is not one of {', '.join(LICENSES)}")
    elif not value:
      problems.append(f"line {number}: {key} has no value")
  for key in REQUIRED:
    if key not in seen:
      problems.append(f"line -: required metadata '<!-- {key}: ... -->' is missing")
  for key, numbers in seen.items():
    if len(numbers) > 1 and key not in REPEATABLE:
      problems.append(
        f"line {numbers[1]}: {key} appears {len(numbers)} times (lines "
        f"{', '.join(map(str, numbers))}); it must appear once"
      )
  return problems


def validate_card(path: str) -> List[str]:
  """Validates a card file; returns its problems (empty when valid).

  Raises:
    UsageError: the file cannot be read.
  """
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise UsageError(f"cannot read card {path}: {e}; pass a UTF-8 markdown file.") from e
  return validate_card_text(text)


def kaggle_metadata(
  handle: str,
  description: str,
  fine_tunable: bool,
  license_name: Optional[str],
  datasets: Iterable[str],
) -> Dict[str, Any]:
  """Returns Kaggle's model-instance-metadata.json content for kagglehub uploads."""
  publisher, name, version = parse_handle(handle)
  return {
    "ownerSlug": publisher,
    "modelSlug": name,
    "instanceSlug": "default",
    "framework": "tensorFlow2",
    "overview": " ".join(description.split()),
    "usage": (
      f"```python\nimport tensorflow_hub as hub\n\nlayer = hub.KerasLayer(PATH, "
      f"trainable={bool(fine_tunable)})\n```\nVersion {version} of {handle}."
    ),
    "licenseName": license_name or "Apache 2.0",
    "fineTunable": bool(fine_tunable),
    "trainingData": list(datasets),
    "modelInstanceType": "Unspecified",
  }


def card_options_from(
  record: Optional[Mapping[str, Any]], task: Optional[str], fine_tunable: Optional[bool]
) -> Tuple[str, bool]:
  """Fills task and fine-tunable from hubkit.json where not given."""
  task = task or guess_task(record)
  if fine_tunable is None:
    fine_tunable = bool((record or {}).get("num_trainable_variables", 1))
  return task, fine_tunable


def write_card_files(
  directory: str,
  handle: str,
  description: str,
  asset_path: str,
  record: Optional[Mapping[str, Any]],
  task: Optional[str] = None,
  fine_tunable: Optional[bool] = None,
  model_format: str = "saved_model_2",
  extra: Optional[Mapping[str, Iterable[str]]] = None,
  card_name: str = "README.md",
  changes: Sequence[str] = (),
) -> Tuple[str, str]:
  """Writes the markdown card and model-instance-metadata.json into `directory`.

  Returns:
    The paths of the card and of the Kaggle metadata.

  Raises:
    UsageError: a bad handle, or a card that would not validate.
  """
  from hubkit.atomic import atomic_file

  task, fine_tunable = card_options_from(record, task, fine_tunable)
  text = render_card(
    handle, description, asset_path, task, fine_tunable, model_format, extra, record, changes
  )
  problems = validate_card_text(text)
  if problems:
    raise UsageError(f"the card would be invalid: {problems[0]}.")
  card_path = os.path.join(directory, card_name)
  with atomic_file(card_path, "w") as f:
    f.write(text)
  extra = extra or {}
  kaggle_path = os.path.join(directory, KAGGLE_METADATA_NAME)
  with atomic_file(kaggle_path, "w") as f:
    json.dump(
      kaggle_metadata(
        handle,
        description,
        fine_tunable,
        next(iter(extra.get("license", [])), None),
        extra.get("dataset", []),
      ),
      f,
      indent=2,
    )
  return card_path, kaggle_path
