"""Documentation cards: tfhub.dev markdown and Kaggle instance metadata.

A tfhub.dev card starts with `# Module publisher/name/version` (or `# Lite
...` for a LiteRT variant), then a one-line description, then `<!-- key: value
-->` metadata lines, then free markdown. `validate_card` checks what
tensorflow/tfhub.dev's `tools/validator.py` checks: the first line, the
description, only metadata before the first heading, the card type's required
keys and no others, single values except repeatable tags, tag values from
tfhub.dev's `tags/*.yaml` (`hubkit.registry.tfhub_tags`), and one asset-path with the
type's suffix (`.tar.gz`, `.tflite`).
"""

import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from absl import logging

from hubkit.module.card_metadata import METADATA_LINE
from hubkit.registry import tfhub_tags
from hubkit.errors import UsageError

FORMATS = ("hub", "saved_model", "saved_model_2")
TASKS = tfhub_tags.TASK
LICENSES = tfhub_tags.LICENSE
KAGGLE_METADATA_NAME = "model-instance-metadata.json"
# Card type (its first word) -> required keys, optional keys, asset-path suffix,
# as tfhub.dev's validator defines them for SavedModel and LiteRT cards.
KINDS = {
  "Module": (
    ("asset-path", "task", "fine-tunable", "format"),
    ("network-architecture", "dataset", "language", "license", "colab", "interactive-visualizer"),
    ".tar.gz",
  ),
  "Lite": (("asset-path", "parent-model"), ("colab", "interactive-visualizer"), ".tflite"),
}
REPEATABLE = ("task", "dataset", "language", "network-architecture")
_FIRST_LINE = re.compile(r"^# (Module|Lite) ([a-z0-9-]+)/([\w.-]+(?:/[\w.-]+)*)/([0-9]+)$")
HANDLE = re.compile(r"^([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_.-]*)/([1-9][0-9]*)$")
# tfhub.dev license ids -> the names Kaggle's model metadata uses.
_KAGGLE_LICENSES = {
  "apache-2.0": "Apache 2.0",
  "mit": "MIT",
  "bsd-2-clause": "BSD-2-Clause",
  "bsd-3-clause": "BSD-3-Clause",
  "gpl-2.0": "GPL 2",
  "gpl-3.0": "GPL 3",
  "cc-by-nc-4.0": "CC BY-NC 4.0",
}


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
  """Guesses a tfhub.dev task from the input specs in hubkit.json.

  Strings are text, [batch, height, width, channels] floats are images; a
  module whose inputs say neither is a feature vector of unknown domain,
  for which tfhub.dev has no task, so image-feature-vector is used and a
  warning names `task` (the card is still valid).
  """
  inputs = (record or {}).get("inputs") or [None]
  spec = inputs[0] if isinstance(inputs[0], dict) and "dtype" in inputs[0] else None
  if spec and spec["dtype"] == "string":
    return "text-embedding"
  if spec and spec.get("shape") and len(spec["shape"]) == 4:
    return "image-feature-vector"
  logging.warning(
    "cannot tell the domain of a module with inputs %s; the card says task "
    "image-feature-vector: pass `task` (one of tfhub.dev's tasks) to say what it is.",
    json.dumps(spec),
  )
  return "image-feature-vector"


def _section(title: str, lines: Sequence[str]) -> List[str]:
  """A markdown section, or nothing when it has no lines."""
  return [f"## {title}", "", *lines, ""] if lines else []


def _usage(import_line: str, code: str) -> List[str]:
  return _section("Usage", ["```python", import_line, "", code, "```"])


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
  lines += _section("Changes", [f"* {line}" for line in changes])
  lines += _usage(
    "import tensorflow_hub as hub",
    f'layer = hub.KerasLayer("{asset_path}", trainable={bool(fine_tunable)})',
  )
  return "\n".join(lines)


def validate_card_text(text: str) -> List[str]:
  """Returns every problem of a card, each prefixed with its line number.

  Checks what tfhub.dev's validator checks for Module (SavedModel) and Lite
  cards: the first line, a description, then only metadata lines up to the
  first heading; the card type's required keys, no other keys, single values
  except for repeatable tags, tag values from tfhub.dev's tag lists, and one
  asset-path with the type's suffix.
  """
  lines = text.splitlines()
  problems = []
  first = _FIRST_LINE.match(lines[0].strip()) if lines else None
  if not first:
    problems.append(
      "line 1: must be '# Module publisher/name/version' (or '# Lite ...' for a LiteRT "
      "card; lower-case publisher, integer version)"
    )
  required, optional, suffix = KINDS[first.group(1) if first else "Module"]
  index = 2 if len(lines) > 2 and not lines[1].strip() else 1  # one blank line is allowed
  if (
    len(lines) <= index
    or not lines[index].strip()
    or lines[index].lstrip().startswith(("<!--", "#"))
  ):
    problems.append("line 2: must be a one-line description")
  while index < len(lines) and lines[index].strip() and not lines[index].startswith("<!--"):
    index += 1
  seen: Dict[str, List[int]] = {}
  for number, line in enumerate(lines[index:], start=index + 1):
    if line.startswith("#"):
      break  # metadata ends at the first heading
    if not line.strip():
      continue
    match = METADATA_LINE.match(line.strip())
    if not match:
      problems.append(
        f"line {number}: only metadata lines may come before the first heading, got {line!r}"
      )
      continue
    key, value = match.group(1), match.group(2)
    seen.setdefault(key, []).append(number)
    problems += _value_problems(number, key, value, required + optional, suffix)
  for key in required:
    if key not in seen:
      problems.append(f"line -: required metadata '<!-- {key}: ... -->' is missing")
  for key, numbers in seen.items():
    if len(numbers) > 1 and key not in REPEATABLE:
      problems.append(
        f"line {numbers[1]}: {key} appears {len(numbers)} times (lines "
        f"{', '.join(map(str, numbers))}); it must appear once"
      )
  return problems


def _value_problems(number: int, key: str, value: str, keys, suffix: str) -> List[str]:
  if key not in keys:
    return [f"line {number}: unknown metadata key {key!r}; valid keys: {', '.join(keys)}"]
  if not value:
    return [f"line {number}: {key} has no value"]
  if key == "asset-path" and not value.endswith(suffix):
    return [f"line {number}: asset-path must end in {suffix}, got {value!r}"]
  if key == "format" and value not in FORMATS:
    return [f"line {number}: format {value!r} is not one of {', '.join(FORMATS)}"]
  if key == "fine-tunable" and value not in ("true", "false"):
    return [f"line {number}: fine-tunable must be true or false, got {value!r}"]
  if key == "parent-model" and not HANDLE.match(value):
    return [f"line {number}: parent-model must be a handle publisher/name/version, got {value!r}"]
  allowed = tfhub_tags.BY_KEY.get(key)
  if allowed is not None and value not in allowed:
    shown = ", ".join(allowed[:12]) + (", ..." if len(allowed) > 12 else "")
    return [f"line {number}: {key} {value!r} is not a tfhub.dev tag value ({shown})"]
  return []


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
  record: Optional[Mapping[str, Any]] = None,
  variation: str = "default",
) -> Dict[str, Any]:
  """Kaggle's model-instance-metadata.json, filled from the module.

  The instance type and base model come from the module's provenance: a
  fine-tuned module is a variant of its parent (an external one, named by
  URL, when the parent is an http(s) handle), anything else a base model.

  Args:
    handle: publisher/name/version (owner and model slugs).
    description: the overview.
    fine_tunable: whether the module has trainable variables.
    license_name: a tfhub.dev license id, or None (apache-2.0).
    datasets: training data names.
    record: the module's hubkit.json.
    variation: the Kaggle instance (variation) slug.
  """
  publisher, name, version = parse_handle(handle)
  source = (record or {}).get("source") or {}
  parent = source.get("parent") if source.get("kind") == "fine_tuned" else None
  metadata: Dict[str, Any] = {
    "ownerSlug": publisher,
    "modelSlug": name,
    "instanceSlug": variation,
    "framework": "tensorFlow2",
    "overview": " ".join(description.split()),
    "usage": (
      "```python\nimport kagglehub\nimport tensorflow_hub as hub\n\n"
      f'path = kagglehub.model_download("{publisher}/{name}/tensorFlow2/{variation}")\n'
      f"layer = hub.KerasLayer(path, trainable={bool(fine_tunable)})\n```\n"
      f"Version {version} of {handle}."
    ),
    "licenseName": _KAGGLE_LICENSES.get(license_name or "apache-2.0", license_name),
    "fineTunable": bool(fine_tunable),
    "trainingData": list(datasets),
    "modelInstanceType": "BaseModel",
  }
  if parent and str(parent).startswith(("http://", "https://")):
    metadata["modelInstanceType"] = "ExternalVariant"
    metadata["externalBaseModelUrl"] = parent
  elif parent:
    # Fine-tuned from a local folder or archive: no base Kaggle can link to.
    metadata["modelInstanceType"] = "Unspecified"
  return metadata


def lite_handle(handle: str, quantization: str) -> str:
  """The handle of a module's LiteRT variant, as tfhub.dev named them
  (`<parent>/<variant>/<version>`)."""
  parse_handle(handle)
  return f"{handle}/{'float32' if quantization == 'none' else 'dynamic-range'}/1"


def render_lite_card(
  handle: str,
  description: str,
  asset_path: str,
  quantization: str,
  details: Sequence[str] = (),
) -> str:
  """Returns a tfhub.dev Lite card for the LiteRT variant of module `handle`.

  Args:
    handle: the parent module's publisher/name/version.
    description: one line.
    asset_path: where the .tflite file is hosted.
    quantization: "none" or "dynamic" (names the variant).
    details: lines for a "Conversion" section (sizes, parity).
  """
  lines = [f"# Lite {lite_handle(handle, quantization)}", " ".join(description.split()), ""]
  lines += [f"<!-- asset-path: {asset_path} -->", f"<!-- parent-model: {handle} -->", ""]
  lines += ["## Overview", "", f"The LiteRT (TFLite) variant of {handle}.", ""]
  lines += _section("Conversion", [f"* {line}" for line in details])
  lines += _usage(
    "from ai_edge_litert.interpreter import Interpreter",
    'runner = Interpreter(model_path="model.tflite").get_signature_runner("serving_default")',
  )
  return "\n".join(lines)


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
  from hubkit.utils.atomic import atomic_file

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
        record,
      ),
      f,
      indent=2,
    )
  return card_path, kaggle_path
