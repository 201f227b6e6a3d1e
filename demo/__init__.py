"""`make demo` (run.py) and what it shares with the benchmarks and the tests: inputs made
from real photos (inputs.py) and a loopback HTTP server (loopback_server.py). Never
imported by a build."""
