"""Sharing modules: packing, publishing into a registry root, and serving that
root over the TF Hub hosting protocol, with the documents of each version.

Owns: the archive (`pack`), the atomic, immutable version write and its
guard against breaking changes (`publishing`), where a root keeps each file
(`root_layout`), the HTTP server (`http_server`), the web pages (`pages`),
tfhub.dev cards and Kaggle metadata (`card`, `tfhub_tags`) and Kaggle Models
interop (`kaggle`).

May import: hubkit.formats, hubkit.inspection, hubkit.cache, hubkit.module,
hubkit.safety, hubkit.utils, hubkit.errors.
"""
