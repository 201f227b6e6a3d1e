"""What every benchmark under bench/ shares: the machine it ran on, and `--readme`, which
writes the script's printed output (its markdown table and machine line) into its own
section of bench/README.md, so the README carries the figures as printed, never hand-copied.

A section is the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` (NAME: the
script's file name without `.py`); everything outside the markers (how to run it, how to
read it) is prose and stays as written. Use in a script:

    ap = argparse.ArgumentParser(...)
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        ...  # what this prints to stdout (stderr is progress, not kept) becomes the section
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.output_layout import atomic_write_bytes


class MarkerError(ValueError):
    """The README lacks a section's markers (or has them twice, or in the wrong order)."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_section(text: str, name: str, body: str, where: str = "the README") -> str:
    """`text` with the part between NAME's markers replaced by `body` (markers kept)."""
    start, end = markers(name)
    for marker in (start, end):
        n = text.count(marker)
        if n != 1:
            found = "is missing" if n == 0 else f"appears {n} times"
            raise MarkerError(f"{where}: marker {marker} {found}; the section of bench/{name}.py must be "
                              f"enclosed once by {start} and {end}, each on its own line")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise MarkerError(f"{where}: marker {end} comes before {start}; put {start} first")
    return text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]


def write_section(readme: str | Path, name: str, body: str) -> None:
    """Replace NAME's section of the README file, atomically."""
    path = Path(readme)
    if not path.is_file():
        raise MarkerError(f"{path}: no such file; --readme takes the bench/README.md to write into")
    new = replace_section(path.read_text(), name, body, str(path))
    atomic_write_bytes(path, new.encode("utf-8"))


def add_readme_option(parser: argparse.ArgumentParser, script: str) -> None:
    default = Path(script).resolve().with_name("README.md")
    parser.add_argument("--readme", nargs="?", const=str(default), default=None, metavar="FILE",
                        help=f"also write what this prints into its section of FILE (default {default}), "
                             f"between {markers(Path(script).stem)[0]} and {markers(Path(script).stem)[1]}")


class _Tee(io.TextIOBase):
    """Writes through to the real stdout and keeps a copy."""

    def __init__(self, out):
        self.out, self.kept = out, io.StringIO()

    def write(self, s: str) -> int:
        self.kept.write(s)
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()


@contextmanager
def readme_section(readme: str | None, script: str, variant: str | None = None) -> Iterator[None]:
    """Without `readme`: nothing. With it: check the file and its markers first (a bad one
    exits with the message before the benchmark runs), then write what the block printed
    to stdout into the script's section, if the block ends without an error. `variant`:
    a script whose runs on different inputs each keep a table writes to `NAME-VARIANT`."""
    if readme is None:
        yield
        return
    name = Path(script).stem + (f"-{variant}" if variant else "")
    path = Path(readme)
    try:
        if not path.is_file():
            raise MarkerError(f"{path}: no such file; --readme takes the bench/README.md to write into")
        replace_section(path.read_text(), name, "", str(path))
    except MarkerError as err:
        raise SystemExit(f"error: {err}") from None
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield
    finally:
        sys.stdout = tee.out
    write_section(path, name, tee.kept.getvalue())
    print(f"wrote the output above into {path} ({markers(name)[0]})", file=sys.stderr)


def cpu_model() -> str:
    """The CPU's model name (lscpu), or what platform knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """The GPU's name when torch sees one, else the CPU, cores and torch threads."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
