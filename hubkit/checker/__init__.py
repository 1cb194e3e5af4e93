"""`hubkit check`: prove that a module loads, behaves and fine-tunes as the
Reusable SavedModel interface promises.

Rules live in `rules_*.py`, one family per file, each a function registered
with `@rule(id, title, fix)`; docs/rules.md documents every id. The rule
families (and with them TensorFlow) are imported on first use, so that a
check can start its confined child process first and both start up at once.
"""

import importlib
import os
import shutil
import time
from typing import Callable, List, Optional, Sequence

from hubkit import archive
from hubkit import cache
from hubkit import layout
from hubkit.checker import registry
from hubkit.checker.report import FAIL, PASS, SKIP, WARN, CheckResult, Report
from hubkit.errors import UsageError
from hubkit.safety import child

__all__ = ["check_module", "Report", "CheckResult", "RULE_IDS"]

DEFAULT_TIMEOUT_SECONDS = 1800.0
_RULE_FAMILIES = ("rules_layout", "rules_security", "rules_interface", "rules_behavior",
                  "rules_consumer")


def rules() -> List[registry.Rule]:
  """Every rule, in order (importing the rule families on first use)."""
  for family in _RULE_FAMILIES:
    importlib.import_module(f"hubkit.checker.{family}")
  return list(registry.RULES)


def __getattr__(name: str):
  if name == "RULE_IDS":
    return tuple(r.id for r in rules())
  raise AttributeError(f"module 'hubkit.checker' has no attribute {name!r}")


def _run_rule(rule: registry.Rule, ctx, done: dict) -> CheckResult:
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
    from hubkit.checker.context import first_line  # pylint: disable=g-import-not-at-top
    return CheckResult(rule.id, rule.title, FAIL, f"the rule could not run: {first_line(e)}",
                       rule.fix)
  return CheckResult(rule.id, rule.title, PASS, str(outcome))


def _local_module(path: str) -> tuple:
  """Returns (module directory, temporary directory to remove or None)."""
  if cache.is_url(path):
    # Unscanned here: security.ops is the rule that judges the ops.
    return cache.resolve(path, safe_mode=False), None
  if not os.path.exists(path):
    raise UsageError(f"{path} does not exist; pass a SavedModel directory or a .tar.gz "
                     "module archive.")
  if os.path.isfile(path):
    if not (path.endswith(".tar.gz") or path.endswith(".tgz")):
      raise UsageError(f"{path} is a file but not a .tar.gz module archive; pass the "
                       "SavedModel directory or its .tar.gz archive.")
    tmp = archive.extract_to_temp(path)
    return tmp, tmp
  if not layout.has_saved_model(path):
    raise UsageError(f"{path} is not a SavedModel: it has no saved_model.pb; pass the "
                     "directory that holds saved_model.pb.")
  return path, None


def run_rules(ctx, rule_list: Sequence[registry.Rule], done: dict,
              on_result: Optional[Callable[[CheckResult, float], None]] = None) -> List[CheckResult]:
  """Runs rules in order, recording each status in `done` and its seconds in
  `ctx.figures["seconds"]`; `on_result(result, seconds)` sees each one."""
  results = []
  timings = ctx.figures.setdefault("seconds", {})
  for rule in rule_list:
    start = time.perf_counter()
    result = _run_rule(rule, ctx, done)
    seconds = round(time.perf_counter() - start, 3)
    results.append(result)
    done[rule.id] = result.status
    timings[rule.id] = seconds
    if on_result:
      on_result(result, seconds)
  return results


def check_module(path: str, reference: Optional[str] = None, inputs: Optional[str] = None,
                 tolerance: float = 1e-5, allow_ops: Sequence[str] = (),
                 unconfined: bool = False, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 on_result: Optional[Callable[[CheckResult, float], None]] = None) -> Report:
  """Checks a module against every rule.

  Static rules (files and ops, nothing loaded) run first; if one fails, no
  rule loads or calls the module. The dynamic rules then run in a confined
  child process (see docs/security.md) unless `unconfined` is set.

  Args:
    path: a SavedModel directory, a `.tar.gz` module archive, or an http(s)
      handle (fetched through the cache in $TFHUB_CACHE_DIR).
    reference: optional Keras model or SavedModel to compare outputs with
      (rule behavior.parity).
    inputs: optional `.npz` of test inputs, keyed "inputs" for a single
      tensor or by nest path (dict key / list index) otherwise.
    tolerance: the parity tolerance.
    allow_ops: op types the user reviewed and allows (security.ops).
    unconfined: run the dynamic rules in this process, without confinement
      (only for modules you trust, or where confinement is unavailable).
    timeout: seconds the confined dynamic rules may take in all.
    on_result: called with each rule's result and seconds as it finishes.

  Returns:
    A Report; `report.conforms` is False when any rule failed or the
    dynamic rules could not run (`report.complete` is then False).

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
  # Started before the rules import TensorFlow here, so that the child's
  # start-up runs beside this process's; it loads nothing until told to.
  confined = None if unconfined else child.ConfinedCheck(
      module_dir, path, reference=reference, inputs=inputs, tolerance=tolerance,
      allow_ops=allow_ops, timeout=timeout)
  try:
    every_rule = rules()
    from hubkit.checker.context import Context  # pylint: disable=g-import-not-at-top
    ctx = Context(module_dir, path, reference=reference, inputs_file=inputs,
                  tolerance=tolerance, allow_ops=allow_ops)
    done = {}
    static = [r for r in every_rule if r.static]
    dynamic = [r for r in every_rule if not r.static]
    results = run_rules(ctx, static, done, on_result)
    failed = [r.id for r in results if r.status == FAIL]
    incomplete = ""
    if failed:
      if cache.is_url(path):
        # A condemned module does not stay in the shared cache, where a
        # later load might find it.
        cache.ModuleCache().remove(path)
      reason = (f"not run: {', '.join(failed)} failed, and hubkit never loads or calls a "
                "module that fails a static rule")
      skipped = [CheckResult(r.id, r.title, SKIP, reason) for r in dynamic]
      for result in skipped:
        if on_result:
          on_result(result, 0.0)
      results += skipped
    elif confined is None:
      ctx.figures["confinement"] = "none (--unconfined)"
      _validate_inputs(ctx)
      results += run_rules(ctx, dynamic, done, on_result)
    else:
      running, confined = confined, None
      dynamic_results, figures, incomplete = running.run(dynamic, on_result)
      seconds = {**ctx.figures.get("seconds", {}), **figures.pop("seconds", {})}
      ctx.figures.update(figures)
      ctx.figures["seconds"] = seconds
      results += dynamic_results
    return Report(path, results, ctx.figures, incomplete=incomplete)
  finally:
    if confined is not None:
      confined.cancel()
    if cleanup:
      shutil.rmtree(cleanup, ignore_errors=True)


def _validate_inputs(ctx) -> None:
  """Reads --inputs and --reference once, so that a bad file stops the check
  with its reason (exit 2) instead of being blamed on the module."""
  if ctx.inputs_file and not ctx.load_error and hasattr(ctx.obj, "__call__"):
    ctx.inputs  # pylint: disable=pointless-statement
  if ctx.reference:
    ctx.reference_model  # pylint: disable=pointless-statement


def run_dynamic_rules(ctx, on_result: Callable[[CheckResult, float], None]) -> None:
  """Runs every dynamic rule on a `Context` (in the confined child process)."""
  _validate_inputs(ctx)
  every_rule = rules()
  done = {r.id: PASS for r in every_rule if r.static}
  run_rules(ctx, [r for r in every_rule if not r.static], done, on_result)
