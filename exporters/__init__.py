"""Exporters that turn Keras models into Reusable SavedModels (installed as
``hubkit.exporters``).

Owns: loading a Keras model from any file or folder Keras writes
(`sources`), cutting a sub-model out of it and verifying the export
(`keras_submodel`), the wrapper that gives a Keras 3 model the interface
(`keras3_module`), and KerasHub text models as TF Hub's BERT-style encoder
and preprocessor pair (`keras_hub_text`).

May import: hubkit.module, hubkit.utils, hubkit.errors.
"""
