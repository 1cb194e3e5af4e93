"""Ready-made Reusable SavedModel modules (installed as ``hubkit.modules``)."""
