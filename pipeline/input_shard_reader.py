"""Reads a WebDataset tar from outside (an input shard: anyone's, possibly hostile) so
that every member is accounted for, in one pass and bounded memory.

- One record per sample, whatever its key (also `__`-prefixed keys, and a file member
  with no extension, which is a sample of its own with no parts).
- A member is never read past `max_bytes`: its declared size (a GNU sparse file may
  declare 2 GiB in 300 KB) is checked from the header first.
- Hard links and symlinks are resolved to a file member earlier in the same tar (GNU tar
  writes a hard link for a repeated file); one pointing elsewhere, outside the tar, or to
  a later member fails its sample. Devices, FIFOs and other kinds fail their sample.
  Directories are structure, not samples.
- A sample with the same extension twice (`a.jpg`, `a.jpg`) fails as `duplicate_member`
  rather than one silently replacing the other.
- The end: a complete tar ends with a zero block. A tar cut at a member boundary or inside
  a header reads, to Python's tarfile, like a normal end; `ShardEnd.problem` says it was not.

Names are returned as tarfile decoded them (undecodable bytes as surrogates); the caller
makes them UTF-8-safe (pipeline/safe_text.py).
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's rule (pipeline/shard_reader.py), keeping `__` keys


@dataclass
class MemberSample:
    key: str
    parts: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None  # 'category: message' when the sample cannot be used


class _EndAware(tarfile.TarInfo):
    """Remembers on the TarFile why reading headers stopped (tarfile swallows it)."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.end_problem = None  # the zero block: a complete tar
            raise
        except tarfile.EmptyHeaderError:
            tar.end_problem = "the tar ends without its end-of-archive block (cut at a member boundary)"
            raise
        except tarfile.TruncatedHeaderError:
            tar.end_problem = "the tar is cut inside a member header"
            raise
        except tarfile.InvalidHeaderError as err:
            tar.end_problem = f"a member header is corrupt ({err})"
            raise


def open_input_shard(path: str) -> tarfile.TarFile:
    """A streaming reader (compressed or not) that records how the tar ended."""
    tar = tarfile.open(path, mode="r|*", tarinfo=_EndAware)
    tar.end_problem = "the tar ended early"  # until a header read says otherwise
    return tar


def _kind(m: tarfile.TarInfo) -> str:
    return {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
            tarfile.FIFOTYPE: "FIFO"}.get(m.type, f"member of type {m.type!r}")


class InputShardReader:
    def __init__(self, path: str, max_bytes: int, size_setting: str):
        self.path, self.max_bytes, self.size_setting = path, max_bytes, size_setting
        self._files: dict[str, tarfile.TarInfo] = {}  # file members read so far (headers only): link targets
        self._random_access: tarfile.TarFile | None = None

    def samples(self, tar: tarfile.TarFile) -> Iterator[MemberSample]:
        """One MemberSample per sample, in file order; a sample is handed out before the
        next member is read, so every sample before a cut arrives before the read error."""
        cur: MemberSample | None = None
        try:
            for m in tar:
                if m.isdir():
                    continue
                match = _KEY_EXT.match(m.name)
                key, ext = (match.group(1), match.group(2).lower()) if match else (m.name, "")
                if cur is not None and key != cur.key:
                    yield cur
                    cur = None
                cur = cur or MemberSample(key)
                if m.isfile():
                    self._files[posixpath.normpath(m.name)] = m
                if cur.problem is None:
                    self._add(tar, m, ext, cur)
            if cur is not None:
                yield cur
        finally:
            if self._random_access is not None:
                self._random_access.close()

    def _add(self, tar: tarfile.TarFile, m: tarfile.TarInfo, ext: str, cur: MemberSample) -> None:
        if not ext:
            cur.problem = f"not_a_sample: member {m.name} has no extension (webdataset names are KEY.EXT)"
        elif ext in cur.parts:
            cur.problem = f"duplicate_member: sample {cur.key} has two .{ext} members in a row; which one is meant is unknown"
        elif m.isfile():
            cur.problem = self._too_big(m, m.name) or None
            if cur.problem is None:
                cur.parts[ext] = tar.extractfile(m).read(self.max_bytes + 1)
        elif m.islnk() or m.issym():
            target = self._link_target(m)
            if isinstance(target, str):
                cur.problem = target
            else:
                cur.problem = self._too_big(target, m.name)
                try:
                    if cur.problem is None:
                        cur.parts[ext] = self._read_earlier(target)
                except (tarfile.TarError, OSError, EOFError) as err:  # the second reader: this sample's failure
                    cur.problem = f"link_unresolved: member {m.name} links to {m.linkname}, which could not be read again ({err})"
        else:
            cur.problem = f"unsupported_member: member {m.name} is a {_kind(m)}; only files and links are read"

    def _too_big(self, m: tarfile.TarInfo, name: str) -> str | None:
        if m.size > self.max_bytes:
            return (f"too_large: member {name} declares {m.size} bytes, over {self.size_setting} = "
                    f"{self.max_bytes} (not read)")
        return None

    def _link_target(self, m: tarfile.TarInfo) -> tarfile.TarInfo | str:
        """The file member a link names, or the failure ('category: message')."""
        what = "hard link" if m.islnk() else "symlink"
        if m.islnk():
            target = posixpath.normpath(m.linkname)
        else:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), m.linkname))
        if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
            return f"link_outside: member {m.name} is a {what} to {m.linkname}, outside the tar (not followed)"
        found = self._files.get(target)
        if found is None:
            return f"link_unresolved: member {m.name} is a {what} to {m.linkname}, which is not a file earlier in the tar"
        return found

    def _read_earlier(self, info: tarfile.TarInfo) -> bytes:
        """The bytes of a member already passed in the stream, from a second reader."""
        if self._random_access is None:
            self._random_access = tarfile.open(self.path, mode="r:*")
        return self._random_access.extractfile(info).read(self.max_bytes + 1)
