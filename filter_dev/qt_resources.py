"""Read the files inside a compiled Qt resource file (`.rcc`, made by Qt's `rcc -binary`),
by their resource path, without Qt. GCompris ships its activities' photos this way
(filter_dev/heldout_photos.py). Format (qtbase src/corelib/io/qresource.cpp): a header
`qres`, version, then offsets of the tree, the data and the names; a tree entry is a name
offset, flags (1 zlib-compressed, 2 directory, 4 zstd) and either a directory's children
or a file's data offset; version 2+ entries carry 8 more bytes (last modified)."""

from __future__ import annotations

import struct
import zlib

_COMPRESSED, _DIRECTORY, _ZSTD = 1, 2, 4


def read_qt_resources(path: str) -> dict[str, bytes]:
    """{resource path ("dir/sub/file.webp"): file bytes} of every file in the .rcc at `path`."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt binary resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", b[4:20])
    entry_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        n = struct.unpack(">H", b[names + offset:names + offset + 2])[0]
        return b[names + offset + 6:names + offset + 6 + 2 * n].decode("utf-16-be")  # after length, hash

    files: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        e = tree + i * entry_size
        name_offset, flags = struct.unpack(">IH", b[e:e + 6])
        here = prefix + name(name_offset) if i else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack(">II", b[e + 6:e + 14])
            stack += [(c, here + "/" if here else "") for c in range(first, first + count)]
            continue
        offset = data + struct.unpack(">I", b[e + 10:e + 14])[0]
        size = struct.unpack(">I", b[offset:offset + 4])[0]
        raw = b[offset + 4:offset + 4 + size]
        if flags & _ZSTD:
            raise ValueError(f"{path}: {here} is zstd-compressed, which this reader does not decode")
        files[here] = zlib.decompress(raw[4:]) if flags & _COMPRESSED else raw  # qCompress: 4-byte size first
    return files
