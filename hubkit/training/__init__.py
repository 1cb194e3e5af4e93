"""Fine-tuning a published module on your data and re-exporting it.

Owns: `finetune` (`hubkit finetune`: Keras 3 with `hubkit.KerasLayer`, or
tf_keras with `hub.KerasLayer`) and the per-epoch state that survives a kill
at any moment (`epoch_backup`).

May import: hubkit.exporters, hubkit.keras_layer, hubkit.cache,
hubkit.module, hubkit.utils, hubkit.errors.
"""
