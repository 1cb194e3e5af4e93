"""Which pip package defines an op type that core TensorFlow lacks.

A module that uses such ops loads only where that package is imported, and
a stock TF Serving binary cannot serve it. The table names the packages
whose ops appear in published modules; an op it does not know is reported
as coming from an unknown package.

Example:

  from hubkit.module import op_packages
  op_packages.package_for("WordpieceTokenizeWithOffsets")  # "tensorflow-text"
"""

import importlib
from typing import Dict, List, Optional, Sequence

# Ops registered under a namespace prefix.
_PREFIXES = {
  "TFText>": "tensorflow-text",
  "Addons>": "tensorflow-addons",
  "IO>": "tensorflow-io",
  "TFRA>": "tensorflow-recommenders-addons",
  "SimpleML": "tensorflow-decision-forests",
  "Scann": "scann",
}
# pip package -> the Python module whose import registers its ops.
_IMPORT_NAMES = {
  "tensorflow-text": "tensorflow_text",
  "tensorflow-addons": "tensorflow_addons",
  "tensorflow-io": "tensorflow_io",
  "tensorflow-recommenders-addons": "tensorflow_recommenders_addons",
  "tensorflow-decision-forests": "tensorflow_decision_forests",
  "scann": "scann",
}
# tensorflow-text's ops from before it used the TFText> prefix.
_TENSORFLOW_TEXT = frozenset(
  {
    "CaseFoldUTF8",
    "ConstrainedSequence",
    "FastBertNormalize",
    "FastWordpieceDetokenize",
    "FastWordpieceTokenizeWithOffsets",
    "FindSourceOffsets",
    "MaxSpanningTree",
    "NormalizeUTF8",
    "NormalizeUTF8WithOffsetsMap",
    "PhraseTokenize",
    "RegexSplitWithOffsets",
    "RougeL",
    "SentenceFragments",
    "SentenceFragmentsV2",
    "SentencepieceDetokenizeOp",
    "SentencepieceIdToStringOp",
    "SentencepieceOp",
    "SentencepieceStringToIdOp",
    "SentencepieceTokenizeOp",
    "SentencepieceTokenizeWithOffsetsOp",
    "SentencepieceVocabSizeOp",
    "SplitMergeFromLogitsTokenizeWithOffsets",
    "SplitMergeTokenizeWithOffsets",
    "TokenizerFromLogits",
    "UnicodeScriptTokenizeWithOffsets",
    "WhitespaceTokenizeWithOffsets",
    "WordpieceTokenizeWithOffsets",
  }
)


def package_for(op: str) -> Optional[str]:
  """The pip package that registers `op`, or None when unknown."""
  if op in _TENSORFLOW_TEXT:
    return "tensorflow-text"
  for prefix, package in _PREFIXES.items():
    if op.startswith(prefix):
      return package
  return None


def packages_for(ops: Sequence[str]) -> Dict[str, List[str]]:
  """package -> the ops it provides ("unknown" for ops of no known package)."""
  found: Dict[str, List[str]] = {}
  for op in sorted(ops):
    found.setdefault(package_for(op) or "unknown", []).append(op)
  return found


def import_packages(ops: Sequence[str]) -> List[str]:
  """Imports the installed packages that register `ops`, so that a graph
  using them loads; a package that is not installed is left for the load to
  report (as "Op type not registered").

  Returns:
    The Python modules imported.
  """
  imported = []
  for package in sorted(packages_for(ops)):
    name = _IMPORT_NAMES.get(package)
    if name is None:
      continue
    try:
      importlib.import_module(name)
    except ImportError:
      continue
    imported.append(name)
  return imported
