"""The task contracts a module can be held to: TF Hub's Common SavedModel APIs.

A module that says it is an "image feature vector" or a "text embedding"
promises more than the Reusable SavedModel interface: input and output
shapes, dtypes and value ranges that let any consumer swap one publisher's
module for another's. The contracts are tensorflow/hub's
`docs/common_saved_model_apis/images.md` and `text.md`; each clause is one
`api.<task>.<clause>` rule (`rules_api.py`, docs/rules.md).

The task comes from `api=` (`hubkit check --api`), else from the module's
card: its `task` tag (or `module-type`, in older cards).
"""

import os
from typing import Optional

from hubkit.errors import UsageError
from hubkit.module.card_metadata import card_metadata

SOURCE = "https://github.com/tensorflow/hub/blob/master/docs/common_saved_model_apis/"

# task -> the part of the contract's source that defines it.
APIS = {
  "image_feature_vector": "images.md#feature-vector",
  "image_classification": "images.md#classification",
  "text_embedding": "text.md#text-embeddings-from-text",
  "text_preprocessor": "text.md#transformer-encoders",
  "text_encoder": "text.md#transformer-encoders",
}

# tfhub.dev card tasks (tensorflow/tfhub.dev tags/task.yaml) with a contract.
_CARD_TASKS = {
  "image-feature-vector": "image_feature_vector",
  "image-classification": "image_classification",
  "image-classification-logits": "image_classification",
  "image-classifier": "image_classification",
  "text-embedding": "text_embedding",
  "text-preprocessing": "text_preprocessor",
}


def parse_api(name: str) -> str:
  """The task `name` names ("image-feature-vector" and tfhub.dev's task ids too).

  Raises:
    UsageError: no contract exists for `name`; the message lists those that do.
  """
  key = name.strip().lower().replace("-", "_")
  if key in APIS:
    return key
  if name.strip().lower() in _CARD_TASKS:
    return _CARD_TASKS[name.strip().lower()]
  raise UsageError(
    f"`api`={name} is not a task hubkit has a contract for; valid: {', '.join(APIS)}."
  )


def api_from_card(text: str) -> Optional[str]:
  """The task a card's `task` (or `module-type`) tag names, when a contract exists."""
  _, tags, _ = card_metadata(text)
  for key in ("task", "module-type"):
    for value in tags.get(key, []):
      if value.strip().lower() in _CARD_TASKS:
        return _CARD_TASKS[value.strip().lower()]
  return None


def card_beside(path: str) -> Optional[str]:
  """The card a registry root keeps for the archive at `path`, if any.

  `ROOT/p/n/<version>` and `<version>.tar.gz` keep theirs in
  `<version>.d/README.md`, the earlier `<version>/module.tar.gz` beside it.
  """
  if "://" in path:
    return None
  base = path[: -len(".tar.gz")] if path.endswith(".tar.gz") else path
  candidates = [os.path.join(f"{base}.d", "README.md")]
  if os.path.basename(path) == "module.tar.gz":
    candidates.append(os.path.join(os.path.dirname(path), "README.md"))
  return next((c for c in candidates if os.path.isfile(c)), None)


def resolve_api(api: Optional[str], card: Optional[str], path: str) -> Optional[str]:
  """The task to check: `api` if given, else the one `card` (or the card the
  registry keeps beside `path`) names; None when neither says.

  Raises:
    UsageError: `api` has no contract, or `card` cannot be read.
  """
  if api:
    return parse_api(api)
  card = card or card_beside(path)
  if not card:
    return None
  try:
    with open(card, encoding="utf-8") as f:
      return api_from_card(f.read())
  except (OSError, UnicodeDecodeError) as e:
    raise UsageError(f"cannot read `card` {card} ({e}); pass a tfhub.dev markdown card.") from e
