"""`hubkit check`: prove that a module loads, behaves and fine-tunes as the
Reusable SavedModel interface promises.

Rules live in `rules_*.py`, one family per file, each a function registered
with `@rule(id, title, fix)`; docs/rules.md documents every id. The rule
families (and with them TensorFlow) are imported on first use, so that a
check can start its confined child process first and both start up at once.
"""

import dataclasses
import importlib
import os
import time
from typing import Callable, List, Optional, Sequence

from hubkit import cache
from hubkit import check_records
from hubkit import handles
from hubkit import resolver
from hubkit import signing
from hubkit.checker import rule_table
from hubkit.checker.report import FAIL, PASS, SKIP, WARN, CheckResult, Report
from hubkit.errors import NotFoundError, UsageError
from hubkit.safety import child
from hubkit.version import __version__

__all__ = ["check_module", "Report", "CheckResult", "RULE_IDS"]

DEFAULT_TIMEOUT_SECONDS = 1800.0
_RULE_FAMILIES = (
  "rules_layout",
  "rules_security",
  "rules_interface",
  "rules_behavior",
  "rules_consumer",
  "rules_serving",
)
# Rule families whose warnings a user may ask to count as failures.
REQUIRABLE = ("serving",)


def rules() -> List[rule_table.Rule]:
  """Every rule, in the order they run: static rules first, then family order
  (importing the rule families on first use)."""
  for family in _RULE_FAMILIES:
    importlib.import_module(f"hubkit.checker.{family}")
  # By family, not by registration: a family imported early elsewhere (a
  # test, a plug-in) must not reorder the report.
  family = {f"hubkit.checker.{name}": i for i, name in enumerate(_RULE_FAMILIES)}
  return sorted(
    rule_table.RULES,
    key=lambda r: (not r.static, family.get(r.function.__module__, len(family))),
  )


def __getattr__(name: str):
  if name == "RULE_IDS":
    return tuple(r.id for r in rules())
  raise AttributeError(f"module 'hubkit.checker' has no attribute {name!r}")


def _run_rule(rule: rule_table.Rule, ctx, done: dict) -> CheckResult:
  if rule.needs_load and ctx.load_error:
    return CheckResult(rule.id, rule.title, SKIP, "the module does not load (see interface.call)")
  blocked = [r for r in rule.requires if done.get(r) not in (PASS, WARN)]
  if blocked:
    return CheckResult(rule.id, rule.title, SKIP, f"needs {', '.join(blocked)} to pass first")
  try:
    outcome = rule.function(ctx)
  except rule_table.RuleFailed as e:
    return CheckResult(rule.id, rule.title, FAIL, str(e), rule.fix)
  except rule_table.RuleWarning as e:
    return CheckResult(rule.id, rule.title, WARN, str(e), rule.fix)
  except rule_table.RuleSkipped as e:
    return CheckResult(rule.id, rule.title, SKIP, str(e))
  except Exception as e:
    # A hostile or broken module must not crash the whole check: the rule
    # that tripped over it fails, with the reason.
    from hubkit.checker.context import first_line

    return CheckResult(
      rule.id, rule.title, FAIL, f"the rule could not run: {first_line(e)}", rule.fix
    )
  if not isinstance(outcome, str):
    # The contract (rule_table): a pass returns its message. Anything else,
    # such as a (status, message) tuple, is a bug in the rule, and must not
    # be recorded as a pass.
    return CheckResult(
      rule.id,
      rule.title,
      FAIL,
      f"the rule returned {type(outcome).__name__}, "
      "not a message; rules report failures by raising RuleFailed",
      rule.fix,
    )
  return CheckResult(rule.id, rule.title, PASS, outcome)


def run_rules(
  ctx,
  rule_list: Sequence[rule_table.Rule],
  done: dict,
  on_result: Optional[Callable[[CheckResult, float], None]] = None,
) -> List[CheckResult]:
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


def check_module(
  path: str,
  reference: Optional[str] = None,
  inputs: Optional[str] = None,
  tolerance: float = 1e-5,
  allow_ops: Sequence[str] = (),
  unconfined: bool = False,
  timeout: float = DEFAULT_TIMEOUT_SECONDS,
  on_result: Optional[Callable[[CheckResult, float], None]] = None,
  require: Sequence[str] = (),
) -> Report:
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
    require: rule families (of REQUIRABLE, e.g. "serving") whose warnings
      count as failures.

  Returns:
    A Report; `report.conforms` is False when any rule failed or the
    dynamic rules could not run (`report.complete` is then False).

  Raises:
    hubkit.signing.SignatureError: trusted keys are set ($HUBKIT_TRUSTED_KEYS)
      and none verifies the module's signature.
    UsageError: the check cannot run (not a SavedModel, an unsafe archive,
      unreadable `inputs`); NotFoundError (also an OSError) for a missing
      path; hubkit.errors.FetchError / ArchiveError for a URL or archive
      that cannot be fetched or read.
  """
  if reference and not os.path.exists(reference):
    raise NotFoundError(
      f"`reference` {reference} does not exist; pass the source Keras model or export."
    )
  if inputs and not os.path.isfile(inputs):
    raise NotFoundError(f"`inputs` file {inputs} does not exist; pass a .npz of test inputs.")
  unknown = sorted(set(require) - set(REQUIRABLE))
  if unknown:
    raise UsageError(
      f"`require`={','.join(unknown)} is not a rule family that can be required; "
      f"valid: {', '.join(REQUIRABLE)}."
    )
  strict = _Strict(require, on_result)
  keys = signing.trusted_keys()
  with resolver.local_module(path) as module_dir:
    # A module that is not what its trusted publisher signed is not checked.
    resolver.verify_signature(path, module_dir, keys)
    return _check_local(
      module_dir, path, reference, inputs, tolerance, allow_ops, unconfined, timeout, strict
    )


class _Strict:
  """Turns the warnings of required rule families into failures, before
  anyone (the live display, the report) sees them."""

  def __init__(self, families: Sequence[str], on_result):
    self._prefixes = tuple(f"{f}." for f in families)
    self._on_result = on_result

  def judge(self, result: CheckResult) -> CheckResult:
    if result.status == WARN and result.id.startswith(self._prefixes):
      return dataclasses.replace(result, status=FAIL, message=f"required: {result.message}")
    return result

  def show(self, result: CheckResult, seconds: float) -> None:
    if self._on_result:
      self._on_result(self.judge(result), seconds)


def _check_local(
  module_dir: str,
  path: str,
  reference: Optional[str],
  inputs: Optional[str],
  tolerance: float,
  allow_ops: Sequence[str],
  unconfined: bool,
  timeout: float,
  strict: _Strict,
) -> Report:
  on_result = strict.show
  # Started before the rules import TensorFlow here, so that the child's
  # start-up runs beside this process's; it loads nothing until told to.
  confined = (
    None
    if unconfined
    else child.ConfinedCheck(
      module_dir,
      path,
      reference=reference,
      inputs=inputs,
      tolerance=tolerance,
      allow_ops=allow_ops,
      timeout=timeout,
    )
  )
  try:
    every_rule = rules()
    from hubkit.checker.context import Context

    ctx = Context(
      module_dir,
      path,
      reference=reference,
      inputs_file=inputs,
      tolerance=tolerance,
      allow_ops=allow_ops,
    )
    done = {}
    static = [r for r in every_rule if r.static]
    dynamic = [r for r in every_rule if not r.static]
    results = run_rules(ctx, static, done, on_result)
    failed = [r.id for r in results if r.status == FAIL]
    incomplete = ""
    if failed:
      if handles.is_url(path):
        # A condemned module does not stay in the shared cache, where a
        # later load might find it.
        cache.ModuleCache().remove(path)
      reason = (
        f"not run: {', '.join(failed)} failed, and hubkit never loads or calls a "
        "module that fails a static rule"
      )
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
    report = Report(path, [strict.judge(r) for r in results], ctx.figures, incomplete=incomplete)
    if not incomplete:
      check_records.save(
        module_dir,
        {
          "conforms": report.conforms,
          "failed": report.failed(),
          "summary": report.summary(),
          "verdict": report.verdict(),
          "results": [
            {"id": r.id, "status": r.status, "message": r.message} for r in report.results
          ],
          "hubkit_version": __version__,
          "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
      )
    return report
  finally:
    if confined is not None:
      confined.cancel()


def _validate_inputs(ctx) -> None:
  """Reads --inputs and --reference once, so that a bad file stops the check
  with its reason (exit 2) instead of being blamed on the module."""
  if ctx.inputs_file and not ctx.load_error and hasattr(ctx.obj, "__call__"):
    ctx.inputs
  if ctx.reference:
    ctx.reference_model


def run_dynamic_rules(ctx, on_result: Callable[[CheckResult, float], None]) -> None:
  """Runs every dynamic rule on a `Context` (in the confined child process)."""
  _validate_inputs(ctx)
  every_rule = rules()
  done = {r.id: PASS for r in every_rule if r.static}
  run_rules(ctx, [r for r in every_rule if not r.static], done, on_result)
