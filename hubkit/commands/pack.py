"""Packs a SavedModel directory into the hosting-protocol archive
(deterministic .tar.gz whose root is the SavedModel root), and writes a
tfhub.dev card (<archive stem>.md) and Kaggle's model-instance-metadata.json
beside it.

Example:
  hubkit pack /tmp/features --output=/tmp/features.tar.gz --handle=me/features/1
"""

import os
from typing import List

from absl import flags

from hubkit.commands import _card_flags
from hubkit.commands import _common
from hubkit.errors import UsageError

FLAGS = flags.FlagValues()
flags.DEFINE_string("output", None, "The archive to write (.tar.gz).", flag_values=FLAGS)
flags.DEFINE_string(
  "handle", None, "publisher/name/version for the card (default: no card).", flag_values=FLAGS
)
flags.DEFINE_bool("overwrite", False, "Replace an existing archive.", flag_values=FLAGS)
flags.DEFINE_bool(
  "warmup",
  False,
  "Add TF Serving warm-up requests from sample inputs (assets.extra/"
  "tf_serving_warmup_requests; needs tensorflow-serving-api).",
  flag_values=FLAGS,
)
_card_flags.define(FLAGS)


def main(args: List[str]) -> int:
  module_dir = _common.one_positional("pack", "module directory", args)
  (output,) = _common.required(FLAGS, "output")
  from hubkit.utils.digest import sha256_file
  from hubkit.registry import pack

  if not FLAGS.handle and _card_flags.given(FLAGS):
    raise UsageError(
      f"{', '.join(_card_flags.given(FLAGS))} describe the card, which is only "
      "written with --handle=publisher/name/version; add --handle or drop them."
    )
  if not FLAGS.handle:
    path = pack.pack_module(module_dir, output, overwrite=FLAGS.overwrite, warmup=FLAGS.warmup)
  else:
    path, card_path, kaggle_path = pack.pack_with_card(
      module_dir,
      output,
      FLAGS.handle,
      description=FLAGS.description,
      task=FLAGS.task,
      fine_tunable=_card_flags.fine_tunable(FLAGS),
      model_format=FLAGS.format,
      extra=_card_flags.extra(FLAGS),
      overwrite=FLAGS.overwrite,
      warmup=FLAGS.warmup,
    )
  print(
    f"packed {module_dir} into {path} ({os.path.getsize(path):,} bytes, sha256 {sha256_file(path)})"
  )
  if FLAGS.handle:
    print(f"wrote card {card_path} and {kaggle_path}")
  return 0
