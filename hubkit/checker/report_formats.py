"""Check reports for machines: SARIF 2.1.0 and JUnit XML.

SARIF is what code-scanning services read (GitHub's, Azure DevOps', IDEs):
one result per failed or warned rule, with the rule's help text and the
module file it concerns. JUnit XML is what every CI system shows as test
results: one test case per rule. Both take several reports, so one run of
`hubkit check ROOT` gives one file.

Example:

```python
import hubkit
from hubkit.checker import report_formats

report = hubkit.check_module("/tmp/mul_module")
print(report_formats.to_junit([report]))
```
"""

import json
import os
from typing import Any, Dict, List, Sequence
from xml.etree import ElementTree

from hubkit.checker.report import FAIL, SKIP, WARN, Report
from hubkit.version import __version__

FORMATS = ("table", "sarif", "junit")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_RULES_URI = "https://github.com/hubkit/hubkit/blob/main/docs/rules.md"
# The module file each rule family is about; the folder itself otherwise.
_FILES = {
  "security": "saved_model.pb",
  "serving": "saved_model.pb",
  "interface": "saved_model.pb",
  "api": "saved_model.pb",
  "behavior": "variables/variables.index",
  "roundtrip": "variables/variables.index",
}


def _location(module: str, rule_id: str) -> str:
  """The URI of the file a rule concerns: relative to the working directory
  when it lies inside it (as code-scanning services want), else absolute."""
  if "://" in module:
    return module
  target = module
  if os.path.isdir(module):
    target = os.path.join(module, _FILES.get(rule_id.split(".", maxsplit=1)[0], ""))
  path = os.path.abspath(target)
  here = os.getcwd()
  if os.path.commonpath([here, path]) == here:
    return os.path.relpath(path, here).replace(os.sep, "/")
  return "file://" + path.replace(os.sep, "/")


def to_sarif(reports: Sequence[Report]) -> Dict[str, Any]:
  """One SARIF 2.1.0 log: a run of hubkit with a result per failed or warned
  rule of every report, and an invocation note where a check was incomplete."""
  rules: Dict[str, Dict[str, Any]] = {}
  results = []
  for report in reports:
    for result in report.results:
      if result.status not in (FAIL, WARN):
        continue
      if result.id not in rules:
        rules[result.id] = {
          "id": result.id,
          "name": result.id.replace(".", "_"),
          "shortDescription": {"text": result.title},
          "help": {"text": result.fix or result.title},
          "helpUri": f"{_RULES_URI}#{result.id.split('.')[0]}",
        }
      results.append(
        {
          "ruleId": result.id,
          "ruleIndex": list(rules).index(result.id),
          "level": "error" if result.status == FAIL else "warning",
          "message": {"text": f"{report.module}: {result.message}"},
          "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": _location(report.module, result.id)}}}
          ],
        }
      )
  incomplete = [r for r in reports if r.incomplete]
  return {
    "$schema": SARIF_SCHEMA,
    "version": "2.1.0",
    "runs": [
      {
        "tool": {
          "driver": {
            "name": "hubkit",
            "version": __version__,
            "informationUri": _RULES_URI,
            "rules": list(rules.values()),
          }
        },
        "results": results,
        "invocations": [
          {
            "executionSuccessful": not incomplete,
            "toolExecutionNotifications": [
              {"level": "error", "message": {"text": f"{r.module}: {r.incomplete}"}}
              for r in incomplete
            ],
          }
        ],
      }
    ],
  }


def dumps_sarif(reports: Sequence[Report]) -> str:
  return json.dumps(to_sarif(reports), indent=2) + "\n"


def to_junit(reports: Sequence[Report]) -> str:
  """JUnit XML: a test suite per module, a test case per rule (failed rules
  fail, skipped ones are skipped, warnings pass with the warning as output;
  an incomplete check is an error)."""
  suites = ElementTree.Element("testsuites", name="hubkit check")
  totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
  for report in reports:
    seconds = report.figures.get("seconds", {})
    counts = {
      "tests": len(report.results),
      "failures": sum(r.status == FAIL for r in report.results),
      "errors": int(bool(report.incomplete)),
      "skipped": sum(r.status == SKIP for r in report.results),
      "time": round(sum(seconds.get(r.id, 0.0) for r in report.results), 3),
    }
    suite = ElementTree.SubElement(
      suites, "testsuite", name=report.module, **{k: str(v) for k, v in counts.items()}
    )
    for result in report.results:
      case = ElementTree.SubElement(
        suite,
        "testcase",
        name=result.id,
        classname=f"hubkit.{result.id.split('.')[0]}",
        time=str(seconds.get(result.id, 0.0)),
      )
      if result.status == FAIL:
        failure = ElementTree.SubElement(case, "failure", message=result.message, type="fail")
        failure.text = f"{result.message}\nfix: {result.fix}" if result.fix else result.message
      elif result.status == SKIP:
        ElementTree.SubElement(case, "skipped", message=result.message)
      elif result.status == WARN:
        ElementTree.SubElement(case, "system-out").text = f"warning: {result.message}" + (
          f"\nfix: {result.fix}" if result.fix else ""
        )
    if report.incomplete:
      ElementTree.SubElement(suite, "error", message=report.incomplete, type="incomplete")
    for key, value in counts.items():
      totals[key] += value
  for key, value in totals.items():
    suites.set(key, str(round(value, 3)))
  ElementTree.indent(suites)
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, "unicode") + "\n"


def render(reports: Sequence[Report], fmt: str) -> str:
  """The reports in `fmt` (one of FORMATS); "table" is each report's table
  and, for several, a summary."""
  if fmt == "sarif":
    return dumps_sarif(reports)
  if fmt == "junit":
    return to_junit(reports)
  text = "\n\n".join(r.table() for r in reports)
  return text + ("\n\n" + summary_table(reports) if len(reports) > 1 else "") + "\n"


def summary_table(reports: Sequence[Report]) -> str:
  """One line per module: its verdict and the rules it failed."""
  width = max(len(r.module) for r in reports)
  lines: List[str] = [f"{'module':<{width}}  verdict             failed rules"]
  for report in reports:
    verdict = "incomplete" if report.incomplete else ("conforms" if report.conforms else "FAILS")
    lines.append(f"{report.module:<{width}}  {verdict:<18}  {', '.join(report.failed()) or '-'}")
  failing = sum(not r.conforms for r in reports)
  lines.append(f"{len(reports)} modules checked, {failing} do not conform")
  return "\n".join(lines)
