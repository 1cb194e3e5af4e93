"""Foundations every layer may use, none of them about modules.

Owns: writes that readers never see half of (`atomic`), streamed file
digests (`digest`), progress bars (`progress`) and muting TensorFlow's C++
start-up chatter (`quiet`).

May import: hubkit.errors.
"""
