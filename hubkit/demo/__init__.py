"""The main job, end to end on the bundled digits example (`hubkit demo`).

Owns: the pipeline that exports, checks, publishes, serves, loads,
fine-tunes and re-checks a module (`pipeline`) and the offline data it runs
on (`datasets`, also used by tests and benchmarks).

May import: hubkit.registry, hubkit.training, hubkit.checker,
hubkit.exporters, hubkit.cache, hubkit.utils, hubkit.errors.
"""
