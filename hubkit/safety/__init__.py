"""Safety: what hubkit does before it runs a module someone else wrote.

Owns: the op scan against an allow-list, without loading the module or
TensorFlow (`ops`, reading the proto with `proto_schema`); that scan for
consumers (`hubkit.load`, `hubkit.KerasLayer`, `hubkit finetune`),
remembered per content digest (`verdicts`); the Linux confinement the
checker's child process puts itself under (`confine`); and OpenSSF
signatures (`signing`). docs/security.md states the threat model.

May import: hubkit.utils, hubkit.errors.
"""
