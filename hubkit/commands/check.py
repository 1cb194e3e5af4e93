"""Checks that modules (SavedModel directories, .tar.gz archives, URL handles,
or folders holding them such as a registry root) load, behave and fine-tune
as the Reusable SavedModel interface promises, and keep their task's contract.

  hubkit check MODULE [MODULE ...] [--api=TASK] [--format=table|sarif|junit]

Static rules (files, ops) run first; the rules that load and call the module
run only if those pass, in a confined child process (docs/security.md).
Exit code 0 when every module conforms (warnings allowed), 1 when a rule
fails for any, 2 when a check could not run (including when confinement is unavailable and
--unconfined was not given). Rules are documented in docs/rules.md.
"""

import json
import sys
from typing import List, Optional

from absl import flags

from hubkit.utils.atomic import atomic_file, check_output_file
from hubkit.checker import report_formats
from hubkit.errors import HubkitError, UsageError


FLAGS = flags.FlagValues()
flags.DEFINE_string("json", None, "Also write the report as JSON to this file.", flag_values=FLAGS)
flags.DEFINE_enum(
  "format",
  "table",
  report_formats.FORMATS,
  "How to print the report: a table, SARIF 2.1.0 (code scanning) or JUnit XML (CI test results).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "sarif", None, "Also write the report as SARIF 2.1.0 to this file.", flag_values=FLAGS
)
flags.DEFINE_string(
  "junit", None, "Also write the report as JUnit XML to this file.", flag_values=FLAGS
)
flags.DEFINE_bool(
  "changed",
  False,
  "The arguments are changed files (as pre-commit passes them): check each module that "
  "holds one (the nearest folder above it with a SavedModel), once.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "output", None, "Write the --format report to this file instead of stdout.", flag_values=FLAGS
)
flags.DEFINE_string(
  "reference", None, "Source Keras model or export to compare outputs with.", flag_values=FLAGS
)
flags.DEFINE_string(
  "inputs", None, "An .npz of test inputs (key 'inputs' for one tensor).", flag_values=FLAGS
)
flags.DEFINE_float(
  "tolerance", 1e-5, "Parity tolerance for --reference.", lower_bound=0.0, flag_values=FLAGS
)
flags.DEFINE_list(
  "allow_ops",
  [],
  "Op types you reviewed and allow beyond the allow-list (comma-separated, e.g. PrintV2).",
  flag_values=FLAGS,
)
flags.DEFINE_bool(
  "unconfined",
  False,
  "Run the rules that load and call the module in this "
  "process, without confinement: only for modules you trust.",
  flag_values=FLAGS,
)
flags.DEFINE_list(
  "require",
  [],
  "Rule families whose warnings count as failures (serving).",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "api",
  None,
  "Also hold the module to a task contract (TF Hub's Common SavedModel APIs): "
  "image_feature_vector, image_classification, text_embedding, text_preprocessor or "
  "text_encoder. Default: the task the card names, if any.",
  flag_values=FLAGS,
)
flags.DEFINE_string(
  "card",
  None,
  "A tfhub.dev card whose task tag names the contract (default: the card a registry "
  "root keeps beside the archive).",
  flag_values=FLAGS,
)
flags.DEFINE_float(
  "timeout",
  1800.0,
  "Seconds the confined rules may take in all.",
  lower_bound=1.0,
  flag_values=FLAGS,
)


def logical_cpus() -> Optional[int]:
  """Devices the CLI sets up before the command runs (None: TensorFlow not started).

  consumer.distributed runs MirroredStrategy over two logical CPUs. Run
  unconfined, the rules run here and need them set up before TensorFlow
  initialises its devices; confined, the child sets them up itself and this
  process leaves TensorFlow unstarted until the child is on its way.
  """
  return 2 if FLAGS.unconfined else None


def _print_live(result, seconds: float) -> None:
  print(f"  {result.id:<34} {result.status:<5} {seconds:7.2f} s", file=sys.stderr, flush=True)


def _print_module(path: str) -> None:
  print(f"checking {path}", file=sys.stderr, flush=True)


def main(args: List[str]) -> int:
  if not args:
    raise UsageError("'hubkit check' needs a module path (or several, or a registry root).")
  for path in (FLAGS.json, FLAGS.output, FLAGS.sarif, FLAGS.junit):
    if path:
      check_output_file(path)
  from hubkit.checker import check

  if FLAGS.changed:
    args = check.modules_holding(args)
    if not args:
      print("no module among the changed files; nothing to check")
      return 0
  # On a terminal, each rule is shown as it finishes instead of a minute of
  # silence; piped output (logs, CI) stays exactly the final report.
  live = _print_live if sys.stdout.isatty() else None
  try:
    reports = check.check_modules(
      args,
      on_module=_print_module if len(args) > 1 or live else None,
      reference=FLAGS.reference,
      inputs=FLAGS.inputs,
      tolerance=FLAGS.tolerance,
      allow_ops=FLAGS.allow_ops,
      unconfined=FLAGS.unconfined,
      timeout=FLAGS.timeout,
      on_result=live,
      require=FLAGS.require,
      api=FLAGS.api,
      card=FLAGS.card,
    )
  except HubkitError as e:
    # A module could not be fetched (unreachable, 404, corrupt download):
    # the check did not run, which is exit code 2, not a verdict.
    raise UsageError(str(e)) from e
  text = report_formats.render(reports, FLAGS.format)
  if FLAGS.output:
    with atomic_file(FLAGS.output, "w") as f:
      f.write(text)
  else:
    sys.stdout.write(text)
  for path, fmt in ((FLAGS.sarif, "sarif"), (FLAGS.junit, "junit")):
    if path:
      with atomic_file(path, "w") as f:
        f.write(report_formats.render(reports, fmt))
  if FLAGS.json:
    with atomic_file(FLAGS.json, "w") as f:
      f.write(
        reports[0].dumps()
        if len(reports) == 1
        else json.dumps({"reports": [r.to_json() for r in reports]}, indent=2, default=str) + "\n"
      )
  if any(r.incomplete for r in reports):
    return 2
  return 0 if all(r.conforms for r in reports) else 1
