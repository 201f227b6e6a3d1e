"""The Qt resource reader behind the GCompris held-out photos: files by their resource
path, stored and zlib-compressed ones, on a file laid out as Qt's `rcc -binary` (format
version 3) lays it out; a missing source names the package to install."""

import struct
import zlib

import pytest

from filter_dev.heldout_photos import SOURCES
from filter_dev.qt_resources import read_qt_resources


def _rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-3 .rcc with one directory "res" holding `files` (name -> (bytes, zlib?))."""
    names, data, offsets = b"", b"", {}
    for n in ["res", *files]:
        offsets[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")  # length, hash (unchecked), UTF-16
    tree = struct.pack(">IHII", 0, 2, 1, 1) + bytes(8)  # root: a directory, 1 child at index 1
    tree += struct.pack(">IHII", offsets["res"], 2, len(files), 2) + bytes(8)  # res/: children from index 2
    for n, (raw, compress) in files.items():
        body = struct.pack(">I", len(raw)) + zlib.compress(raw) if compress else raw  # qCompress: size first
        tree += struct.pack(">IHHHI", offsets[n], 1 if compress else 0, 0, 1, len(data)) + bytes(8)
        data += struct.pack(">I", len(body)) + body
    head = 24
    return b"qres" + struct.pack(">IIIII", 3, head, head + len(tree), head + len(tree) + len(data), 0) + tree + data + names


def test_reads_stored_and_compressed_files_by_path(tmp_path):
    photo, readme = bytes(range(256)) * 4, b"Copyright: someone\n" * 20
    path = tmp_path / "x.rcc"
    path.write_bytes(_rcc({"photo.webp": (photo, False), "README": (readme, True)}))
    assert read_qt_resources(str(path)) == {"res/photo.webp": photo, "res/README": readme}


def test_not_a_resource_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.rcc"
    path.write_bytes(b"RIFF....WEBP")
    with pytest.raises(ValueError, match=r"x\.rcc: not a Qt binary resource file"):
        read_qt_resources(str(path))


def test_missing_source_names_the_package(tmp_path):
    with pytest.raises(SystemExit, match=r"erase\.rcc not found; install Debian's gcompris-qt-data \(make heldout-photos\)"):
        SOURCES["gcompris"].load(str(tmp_path), "alpaca.webp")
