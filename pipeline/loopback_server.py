"""Moved to demo/loopback_server.py (a test and demo helper, not part of a build). This
alias stays only until tests/train/shards.py (owned by the training branch) imports
demo.loopback_server."""

from demo.loopback_server import LoopbackServer  # noqa: F401
