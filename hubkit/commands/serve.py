"""Serves a registry root over the TF Hub hosting protocol:
GET /publisher/name/version?tf-hub-format=compressed returns the archive, so
tensorflow_hub.load("http://HOST:PORT/publisher/name/version") works, and
http://HOST:PORT/ shows the registry's pages. Ctrl-C stops it.
"""

from typing import List

from absl import flags

from hubkit.commands import _common

FLAGS = flags.FlagValues()
flags.DEFINE_string("root", None, "The registry root folder.", flag_values=FLAGS)
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.", flag_values=FLAGS)
flags.DEFINE_integer(
  "port",
  8765,
  "Port to listen on (0 picks a free one).",
  lower_bound=0,
  upper_bound=65535,
  flag_values=FLAGS,
)


def main(args: List[str]) -> int:
  _common.no_positional("serve", args)
  (root,) = _common.required(FLAGS, "root")
  from hubkit.registry import http_server

  http_server.serve(root, host=FLAGS.host, port=FLAGS.port)
  return 0
