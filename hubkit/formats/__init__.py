"""A module in other formats than the SavedModel it was published as.

Owns: LiteRT (TFLite) variants, verified against the SavedModel (`litert`,
`hubkit convert`), and TF Serving warm-up requests made from a module's
sample inputs (`warmup`, `hubkit pack --warmup`).

May import: hubkit.cache, hubkit.module, hubkit.safety, hubkit.utils,
hubkit.errors.
"""
