"""Exporters that turn Keras models into Reusable SavedModels (installed as ``hubkit.exporters``)."""
