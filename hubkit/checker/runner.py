"""Running rules: every rule in report order, one at a time, each outcome a
`CheckResult` (a rule that raises an unexpected error fails; it never crashes
the check).

The rule families (and with them TensorFlow) are imported on first use of
`rules()`, so that a check can start its confined child process first and
both start up at once.
"""

import importlib
import time
from typing import Callable, List, Optional, Sequence

from hubkit.checker import rule_table
from hubkit.checker.report import FAIL, PASS, SKIP, WARN, CheckResult

_RULE_FAMILIES = (
  "rules_layout",
  "rules_security",
  "rules_interface",
  "rules_behavior",
  "rules_consumer",
  "rules_serving",
  "rules_api",
)


def rules(api: Optional[str] = None) -> List[rule_table.Rule]:
  """The rules a check runs, in order: static rules first, then family order
  (importing the rule families on first use).

  Args:
    api: the task contract to hold the module to (`hubkit.checker.apis`);
      its `api.<task>.*` rules join the others. None: no contract rules.
  """
  for family in _RULE_FAMILIES:
    importlib.import_module(f"hubkit.checker.{family}")
  # By family, not by registration: a family imported early elsewhere (a
  # test, a plug-in) must not reorder the report.
  family = {f"hubkit.checker.{name}": i for i, name in enumerate(_RULE_FAMILIES)}
  return sorted(
    (r for r in rule_table.RULES if not r.id.startswith("api.") or r.id.startswith(f"api.{api}.")),
    key=lambda r: (not r.static, family.get(r.function.__module__, len(family))),
  )


def __getattr__(name: str):
  if name == "RULE_IDS":
    # Every rule id, the contract rules of every task included.
    rules()
    return tuple(r.id for r in rule_table.RULES if not r.id.startswith("api.")) + tuple(
      r.id for r in rule_table.RULES if r.id.startswith("api.")
    )
  raise AttributeError(f"module 'hubkit.checker.runner' has no attribute {name!r}")


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


def validate_inputs(ctx) -> None:
  """Reads --inputs and --reference once, so that a bad file stops the check
  with its reason (exit 2) instead of being blamed on the module."""
  if ctx.inputs_file and not ctx.load_error and hasattr(ctx.obj, "__call__"):
    ctx.inputs
  if ctx.reference:
    ctx.reference_model


def run_dynamic_rules(ctx, on_result: Callable[[CheckResult, float], None]) -> None:
  """Runs every dynamic rule on a `Context` (in the confined child process)."""
  validate_inputs(ctx)
  every_rule = rules(ctx.api)
  done = {r.id: PASS for r in every_rule if r.static}
  run_rules(ctx, [r for r in every_rule if not r.static], done, on_result)
