"""Walks object graphs the way tf.train.Checkpoint names their entries."""

import collections
from typing import Any, Callable, Dict, Hashable, Iterable, Tuple

import tensorflow as tf


def all_paths(
  children_of: Callable[[Any], Iterable[Tuple[str, Any, Hashable]]], root: Any
) -> Dict[str, Any]:
  """Maps every "/"-joined attribute path below `root` to the node it reaches.

  Breadth first, so shorter paths and earlier attributes come first. A node
  reachable along several paths (a variable both at `dense/0/kernel` and at
  `variables/0`) appears once per path, because a checkpoint records it under
  whichever path its writer saw first.

  Args:
    children_of: returns (name, child, key) for each child of a node; `key`
      identifies the child so that cycles are cut.
    root: the starting node.

  Returns:
    An insertion-ordered dict from path to node.
  """
  paths = {}
  frontier = collections.deque([("", root, frozenset())])
  while frontier:
    prefix, node, ancestors = frontier.popleft()
    for name, child, key in children_of(node):
      if key in ancestors:
        continue
      path = f"{prefix}{name}"
      paths[path] = child
      frontier.append((f"{path}/", child, ancestors | {key}))
  return paths


def variable_paths(root: tf.train.Checkpoint) -> Dict[str, tf.Variable]:
  """Maps the checkpoint object path of every variable below `root` to it."""

  def children_of(obj):
    if isinstance(obj, tf.Variable):
      return []
    # _trackable_children is what tf.train.Checkpoint itself walks to name
    # checkpoint entries, so these paths match what it writes.
    return [(name, child, id(child)) for name, child in obj._trackable_children().items()]

  return {p: v for p, v in all_paths(children_of, root).items() if isinstance(v, tf.Variable)}
