"""From a handle to a verified local module directory, through the cache that
tensorflow_hub shares ($TFHUB_CACHE_DIR).

Owns: what a handle names (`handles`), `hubkit.resolve` and `hubkit.load`
(`resolver`), fetching over HTTP (`download`), bounded extraction
(`archive`), the gzip codec (`gzip_codec`), the download lock (`locking`),
the store and its upkeep (`store`: `ModuleCache`) and each entry's integrity
record (`manifest`). Every directory it hands out was scanned
(`hubkit.safety`) and checked against the layout `hubkit.module` defines.

May import: hubkit.module, hubkit.safety, hubkit.utils, hubkit.errors.
"""
