"""The conformance checker: proves that a module loads, behaves and fine-tunes
as the Reusable SavedModel interface promises (`hubkit check`).

Owns: `check.check_module` (the entry point), `runner` (every rule, in
order, each outcome a result), `child` (the confined process that runs the
dynamic rules), `context` (what rules see), `report`, `rule_table` (the
`@rule` registry) and the rule families, one per `rules_*.py` file;
docs/rules.md documents every rule id.

May import: hubkit.exporters, hubkit.keras_layer, hubkit.cache,
hubkit.module, hubkit.safety, hubkit.utils, hubkit.errors, hubkit.version.
"""
