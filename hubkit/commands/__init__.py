"""One module per `hubkit` sub-command; each is a thin call of a library function.

Owns: each command's absl flags, its `main(args) -> int`, and the helpers
they share (`_common`, `_card_flags`); `hubkit.cli` dispatches to them.

May import: hubkit.demo, hubkit.registry, hubkit.training, hubkit.formats,
hubkit.checker, hubkit.inspection, hubkit.exporters, hubkit.modules,
hubkit.cache, hubkit.module, hubkit.safety, hubkit.utils, hubkit.errors.
"""
