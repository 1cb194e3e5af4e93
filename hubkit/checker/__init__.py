"""`hubkit check`: prove that a module loads, behaves and fine-tunes as the
Reusable SavedModel interface promises.

Rules live in `rules_*.py`, one family per file, each a function registered
with `@rule(id, title, fix)`; docs/rules.md documents every id.
"""

import os
import shutil
import time
from typing import Optional

from hubkit import archive
from hubkit import cache
from hubkit.checker import registry
from hubkit.checker import rules_layout  # pylint: disable=unused-import
from hubkit.checker import rules_security  # pylint: disable=unused-import
from hubkit.checker import rules_interface  # pylint: disable=unused-import
from hubkit.checker import rules_behavior  # pylint: disable=unused-import
from hubkit.checker import rules_consumer  # pylint: disable=unused-import
from hubkit.checker.context import Context, first_line
from hubkit.checker.report import FAIL, PASS, SKIP, WARN, CheckResult, Report
from hubkit.errors import UsageError

__all__ = ["check_module", "Report", "CheckResult", "RULE_IDS"]

RULE_IDS = tuple(r.id for r in registry.RULES)


def _run_rule(rule: registry.Rule, ctx: Context, done: dict) -> CheckResult:
  if rule.needs_load and ctx.load_error:
    return CheckResult(rule.id, rule.title, SKIP, "the module does not load (see interface.call)")
  blocked = [r for r in rule.requires if done.get(r) not in (PASS, WARN)]
  if blocked:
    return CheckResult(rule.id, rule.title, SKIP, f"needs {', '.join(blocked)} to pass first")
  try:
    outcome = rule.function(ctx)
  except registry.RuleFailed as e:
    return CheckResult(rule.id, rule.title, FAIL, str(e), rule.fix)
  except registry.RuleWarning as e:
    return CheckResult(rule.id, rule.title, WARN, str(e), rule.fix)
  except registry.RuleSkipped as e:
    return CheckResult(rule.id, rule.title, SKIP, str(e))
  except Exception as e:  # pylint: disable=broad-except
    # A hostile or broken module must not crash the whole check: the rule
    # that tripped over it fails, with the reason.
    return CheckResult(rule.id, rule.title, FAIL, f"the rule could not run: {first_line(e)}",
                       rule.fix)
  return CheckResult(rule.id, rule.title, PASS, str(outcome))


def _local_module(path: str) -> tuple:
  """Returns (module directory, temporary directory to remove or None)."""
  if cache.is_url(path):
    return cache.resolve(path), None
  if not os.path.exists(path):
    raise UsageError(f"{path} does not exist; pass a SavedModel directory or a .tar.gz "
                     "module archive.")
  if os.path.isfile(path):
    if not (path.endswith(".tar.gz") or path.endswith(".tgz")):
      raise UsageError(f"{path} is a file but not a .tar.gz module archive; pass the "
                       "SavedModel directory or its .tar.gz archive.")
    tmp = archive.extract_to_temp(path)
    return tmp, tmp
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    raise UsageError(f"{path} is not a SavedModel: it has no saved_model.pb; pass the "
                     "directory that holds saved_model.pb.")
  return path, None


def check_module(path: str, reference: Optional[str] = None, inputs: Optional[str] = None,
                 tolerance: float = 1e-5) -> Report:
  """Checks a module against every rule.

  Args:
    path: a SavedModel directory, a `.tar.gz` module archive, or an http(s)
      handle (fetched through the cache in $TFHUB_CACHE_DIR).
    reference: optional Keras model or SavedModel to compare outputs with
      (rule behavior.parity).
    inputs: optional `.npz` of test inputs, keyed "inputs" for a single
      tensor or by nest path (dict key / list index) otherwise.
    tolerance: the parity tolerance.

  Returns:
    A Report; `report.conforms` is False when any rule failed.

  Raises:
    UsageError: the check cannot run (no such path, not a SavedModel, an
      unsafe or corrupt archive, unreadable --inputs).
  """
  if reference and not os.path.exists(reference):
    raise UsageError(f"--reference {reference} does not exist; pass the source Keras model "
                     "or export.")
  if inputs and not os.path.isfile(inputs):
    raise UsageError(f"--inputs file {inputs} does not exist.")
  module_dir, cleanup = _local_module(path)
  try:
    ctx = Context(module_dir, path, reference=reference, inputs_file=inputs,
                  tolerance=tolerance)
    if inputs and not ctx.load_error and hasattr(ctx.obj, "__call__"):
      ctx.inputs  # pylint: disable=pointless-statement  (a bad --inputs file stops the check)
    results, timings, done = [], {}, {}
    for rule in registry.RULES:
      start = time.perf_counter()
      result = _run_rule(rule, ctx, done)
      results.append(result)
      done[rule.id] = result.status
      timings[rule.id] = round(time.perf_counter() - start, 3)
    ctx.figures["seconds"] = timings
    return Report(path, results, ctx.figures)
  finally:
    if cleanup:
      shutil.rmtree(cleanup, ignore_errors=True)
