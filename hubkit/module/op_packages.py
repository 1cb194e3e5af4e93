"""Which pip package defines an op type that core TensorFlow lacks.

A module that uses such ops loads only where that package is imported, and
a stock TF Serving binary cannot serve it. The table names the packages
whose ops appear in published modules; an op it does not know is reported
as coming from an unknown package.

Example:

  from hubkit.module import op_packages
  op_packages.package_for("WordpieceTokenizeWithOffsets")  # "tensorflow-text"
"""

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
