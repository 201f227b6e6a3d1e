"""The one way a WebDataset tar is read here (the build's shards and rejects, the report,
re-captioning, input shards): webdataset's key rule and its grouping of members."""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator

# WebDataset's rule: the key is the member path up to the first dot of its file name.
_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def member_key_ext(name: str) -> tuple[str, str] | None:
    """(key, extension) of a member name, or None for a name that is not a sample part
    (no extension, or webdataset's own `__...` entries)."""
    match = _KEY_EXT.match(name)
    if not match or match.group(1).rsplit("/", 1)[-1].startswith("__"):
        return None
    return match.group(1), match.group(2).lower()


def _read(tar: tarfile.TarFile, m: tarfile.TarInfo, whole: bool) -> bytes:
    data = tar.extractfile(m).read()
    if whole and len(data) != m.size:
        raise tarfile.ReadError(f"member {m.name} is cut short")
    return data


def iter_members(tar: tarfile.TarFile, whole: bool = False) -> Iterator[tuple[str, str, bytes]]:
    """(key, extension, bytes) per file member that is a sample part, in file order.
    With `whole`, a member shorter than its header says (a cut file) raises
    tarfile.ReadError; without, it is returned as read (its sample fails to decode)."""
    for m in tar:
        split = member_key_ext(m.name) if m.isfile() else None
        if split is not None:
            yield *split, _read(tar, m, whole)


def iter_samples(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample: consecutive members with the same key. A
    sample is handed out before the next member is read, so in a tar cut short every
    sample before the cut arrives before the read error."""
    key, parts = None, {}
    for m in tar:
        split = member_key_ext(m.name) if m.isfile() else None
        if split is None:
            continue
        if split[0] != key and key is not None:
            yield key, parts
            parts = {}
        key = split[0]
        parts[split[1]] = _read(tar, m, False)
    if key is not None:
        yield key, parts
