"""Packs a module and publishes it into a local registry root as
publisher/name/version (with its card and Kaggle metadata). Handles are
immutable: publishing a version again with other content is refused, and a
version that would break consumers of the previous one (see 'hubkit diff') is
refused unless --allow_breaking. Retrained weights (same interface, other
outputs) are reported in the card, and refused only beyond --max_drift.

Example:
  hubkit publish /tmp/features --root=/srv/modules --handle=me/features/1
"""

from typing import List

from absl import flags

from hubkit.commands import _card_flags
from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_string("root", None, "The registry root folder.", flag_values=FLAGS)
flags.DEFINE_string("handle", None, "publisher/name/version.", flag_values=FLAGS)
flags.DEFINE_bool(
  "allow_breaking",
  False,
  "Publish even if 'hubkit diff' finds changes that break consumers of the previous version.",
  flag_values=FLAGS,
)
flags.DEFINE_float(
  "max_drift",
  None,
  "Relative output drift from the previous version your consumers accept; beyond it "
  "the new version is breaking. Default: retrained weights are reported, not refused.",
  lower_bound=0.0,
  flag_values=FLAGS,
)
flags.DEFINE_list(
  "allow_ops", [], "Op types you reviewed, for the scan before the comparison.", flag_values=FLAGS
)
flags.DEFINE_list(
  "formats",
  [],
  "Also publish these formats beside the SavedModel: litert (verified, with a Lite card).",
  flag_values=FLAGS,
)
flags.DEFINE_enum(
  "quantization",
  "none",
  ["none", "dynamic"],
  "The LiteRT variant's quantization (dynamic: int8 weights).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "kaggle_dir",
  None,
  "Also write a folder ready for kagglehub.model_upload (files + model-instance-metadata.json).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "signing_key",
  None,
  "Sign the module with this PEM private key (OpenSSF model-signing).",
  flag_values=FLAGS,
)
_card_flags.define(FLAGS)


def main(args: List[str]) -> int:
  module_dir = _common.one_positional("publish", "module directory", args)
  root, handle = _common.required(FLAGS, "root", "handle")
  from hubkit.registry import publishing

  path = publishing.publish_module(
    module_dir,
    root,
    handle,
    description=FLAGS.description,
    task=FLAGS.task,
    fine_tunable=_card_flags.fine_tunable(FLAGS),
    model_format=FLAGS.format,
    extra=_card_flags.extra(FLAGS),
    allow_breaking=FLAGS.allow_breaking,
    allow_ops=FLAGS.allow_ops,
    max_drift=FLAGS.max_drift,
    formats=FLAGS.formats,
    quantization=FLAGS.quantization,
    kaggle_dir=FLAGS.kaggle_dir,
    signing_key=FLAGS.signing_key,
  )
  print(f"published {handle} at {path}")
  if FLAGS.kaggle_dir:
    publisher, name, _ = handle.split("/")
    print(
      f"wrote {FLAGS.kaggle_dir}; upload it with kagglehub.model_upload("
      f"'{publisher}/{name}/tensorFlow2/default', '{FLAGS.kaggle_dir}')"
    )
  return 0
