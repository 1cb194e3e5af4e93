"""security.ops: every op the module could run is computation or its own state."""

from hubkit.checker.context import Context
from hubkit.checker.rule_table import RuleFailed, rule
from hubkit.safety import ops


@rule(
  "security.ops",
  "Only computation ops, file reads only of own assets",
  fix="remove file, dataset, print, Python and network ops from the model (ship data as "
  "tf.saved_model.Asset files or variables); if you reviewed an op and trust it, "
  "pass --allow_ops=OP (allow_ops=[OP] in Python).",
  static=True,
)
def check_ops(ctx: Context):
  try:
    findings, functions, nodes = ops.scan(ctx.path, ctx.allow_ops)
  except ops.UnsafeModuleError as e:
    raise RuleFailed(str(e)) from e
  ctx.figures["functions_scanned"] = functions
  ctx.figures["nodes_scanned"] = nodes
  if findings:
    raise RuleFailed(ops.describe(findings))
  allowed = f"; allowed by the user: {', '.join(ctx.allow_ops)}" if ctx.allow_ops else ""
  return f"{nodes} ops in {functions} functions and the graph are all on the allow-list{allowed}"
