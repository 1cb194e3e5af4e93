"""Safety: what hubkit does before it runs a module someone else wrote.

* `ops` scans a SavedModel's ops against an allow-list without loading it.
* `verdicts.ensure_safe` is that scan for consumers (`hubkit.load`,
  `hubkit.KerasLayer`, `hubkit finetune`), remembered per content digest.
* `confine` runs the checker's dynamic rules in a child process that cannot
  write outside a scratch directory or reach the network.

docs/security.md states the threat model.
"""
