"""A module on disk and in memory: what a Reusable SavedModel directory holds
and what its loaded object offers.

Owns: reading the interface (`interface`), provenance in hubkit.json
(`metadata`), the file allow-list (`layout`), generated and user-given inputs
(`sample_inputs`, `inputs`), loading weights (`weights`), re-export
(`reexport`), the `ReusableModule` base (`reusable`), the pip packages of
custom ops (`op_packages`) and the last check verdict of each module
(`check_records`). It takes directories and objects, never handles:
resolving a handle is `hubkit.cache`'s job.

May import: hubkit.safety, hubkit.utils, hubkit.errors, hubkit.version.
"""
