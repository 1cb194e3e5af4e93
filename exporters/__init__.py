"""Exporters that turn Keras models into Reusable SavedModels (installed as
``hubkit.exporters``).

Owns: loading a Keras model from any file or folder Keras writes
(`sources`), cutting a sub-model out of it and verifying the export
(`keras_submodel`), and the wrapper that gives a Keras 3 model the
interface (`keras3_module`).

May import: hubkit.module, hubkit.utils, hubkit.errors.
"""
