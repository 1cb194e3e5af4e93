"""Results of a conformance check and how they are shown."""

import dataclasses
import json
from typing import Any, Dict, List

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
STATUSES = (PASS, FAIL, WARN, SKIP)


@dataclasses.dataclass
class CheckResult:
  """The outcome of one rule.

  Attributes:
    id: the rule's stable dotted id, e.g. "interface.training_traces".
    title: a short human title.
    status: one of "pass", "fail", "warn", "skip".
    message: one line saying what was found.
    fix: how to fix a failure or warning (empty when it passed).
  """

  id: str
  title: str
  status: str
  message: str
  fix: str = ""


@dataclasses.dataclass
class Report:
  """Everything `check_module` found.

  Attributes:
    module: the path or handle that was checked.
    results: one CheckResult per rule, in rule order.
    figures: measured numbers (variable counts, losses, timings...).
    incomplete: why the dynamic rules could not run (empty when they did,
      or when a static rule failed and they were not meant to).
  """

  module: str
  results: List[CheckResult]
  figures: Dict[str, Any] = dataclasses.field(default_factory=dict)
  incomplete: str = ""

  @property
  def conforms(self) -> bool:
    """True when the check ran and no rule failed (warnings and skips allowed)."""
    return not self.incomplete and all(r.status != FAIL for r in self.results)

  def result(self, rule_id: str) -> CheckResult:
    """Returns the result of one rule by id."""
    for r in self.results:
      if r.id == rule_id:
        return r
    raise KeyError(f"no rule {rule_id!r}; rules: {', '.join(r.id for r in self.results)}")

  def failed(self) -> List[str]:
    """The ids of the rules that failed."""
    return [r.id for r in self.results if r.status == FAIL]

  def to_json(self) -> Dict[str, Any]:
    """The JSON document `hubkit check --json` writes."""
    return {
      "module": self.module,
      "conforms": self.conforms,
      "complete": not self.incomplete,
      "incomplete_reason": self.incomplete or None,
      "checks": [
        {"id": r.id, "title": r.title, "status": r.status, "message": r.message}
        for r in self.results
      ],
      "figures": self.figures,
    }

  def dumps(self) -> str:
    return json.dumps(self.to_json(), indent=2, sort_keys=False, default=str) + "\n"

  def verdict(self) -> str:
    """The outcome and the tally, without the module's path."""
    counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
    tally = (
      f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[WARN]} warnings, "
      f"{counts[SKIP]} skipped"
    )
    if self.incomplete:
      return f"check incomplete ({self.incomplete}) ({tally})"
    outcome = "conforms" if self.conforms else "does NOT conform"
    return f"{outcome} to the Reusable SavedModel interface ({tally})"

  def summary(self) -> str:
    return f"{self.module}: {self.verdict()}"

  def table(self) -> str:
    """A readable table: rule, status, message, and the fix for failures."""
    width = max(len(r.id) for r in self.results)
    lines = [f"{'rule':<{width}}  status  message", f"{'-' * width}  ------  -------"]
    for r in self.results:
      lines.append(f"{r.id:<{width}}  {r.status:<6}  {r.message}")
      if r.status in (FAIL, WARN) and r.fix:
        lines.append(f"{'':<{width}}          fix: {r.fix}")
    lines.append(self.summary())
    return "\n".join(lines)
