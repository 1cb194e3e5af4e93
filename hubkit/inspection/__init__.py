"""Reports on a module by handle, for a person deciding whether to use it.

Owns: what a module is, needs and last passed (`info`, `hubkit info`) and
whether a new version can replace an old one (`diff`, `hubkit diff`; the
registry's publish guard uses it too).

May import: hubkit.cache, hubkit.module, hubkit.safety, hubkit.utils,
hubkit.errors.
"""
