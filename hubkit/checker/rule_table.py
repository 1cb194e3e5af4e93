"""The rule table: adding a rule is one decorated function in one file.

A rule function takes the `Context` and returns a message string (meaning
pass; any other return value is recorded as a failure of the rule). It may
raise `RuleFailed(message)` to fail, `RuleWarning(message)` to warn or
`RuleSkipped(message)` to skip; anything else it raises is reported as a
failure of that rule, so one broken module cannot crash the whole check.

A rule is *static* when it only reads files and never loads or calls the
module. Static rules run first, in the checking process; the others
(dynamic) run only when every static rule passed, in a confined child
process (`hubkit.safety.confine`).
"""

import dataclasses
from typing import Callable, List, Sequence, Tuple

RULES: List["Rule"] = []


class RuleFailed(Exception):
  """Raised by a rule to report a failure with a one-line message."""


class RuleSkipped(Exception):
  """Raised by a rule that does not apply (or cannot run here)."""


class RuleWarning(Exception):
  """Raised by a rule to report a warning (the module still conforms)."""


@dataclasses.dataclass(frozen=True)
class Rule:
  id: str
  title: str
  fix: str
  function: Callable
  needs_load: bool
  requires: Tuple[str, ...]
  static: bool


def rule(
  rule_id: str,
  title: str,
  fix: str,
  needs_load: bool = True,
  requires: Sequence[str] = (),
  static: bool = False,
) -> Callable:
  """Registers a rule function.

  Args:
    rule_id: the stable dotted id (documented in docs/rules.md).
    title: a short title.
    fix: how to fix a failure, shown under it.
    needs_load: skip the rule when the SavedModel cannot be loaded.
    requires: rules that must pass (or warn) first; otherwise this one is
      skipped, so a broken module is flagged by the rule that names its
      defect rather than by every rule downstream of it.
    static: the rule only reads files (never loads or calls the module).

  Returns:
    The decorator.
  """

  def register(function: Callable) -> Callable:
    if any(r.id == rule_id for r in RULES):
      raise ValueError(f"rule {rule_id} is registered twice")
    RULES.append(
      Rule(rule_id, title, fix, function, needs_load and not static, tuple(requires), static)
    )
    return function

  return register
