"""Text from inputs made safe once, where it enters the pipeline (URL lists, file and
member names, shard captions), so no later writer (parquet, JSON, tar) can fail on it.

Scraped alt text holds lone surrogates (`"caf\\udce9"` is valid JSON) and shards hold
invalid UTF-8; UTF-8 encoders refuse both. Each bad code point is escaped visibly and
losslessly: a surrogate-escaped byte (U+DC80..U+DCFF, Python's way of carrying an
undecodable byte) as `\\xNN`, any other lone surrogate as `\\uXXXX`. Callers record
which fields were escaped (the ledger's `detail`).
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    cp = ord(ch)
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"


def safe_text(value: str | bytes) -> tuple[str, bool]:
    """(text that encodes as UTF-8, whether anything was escaped)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "surrogateescape")
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        return "".join(_escape(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in value), True


def safe_value(value) -> tuple[object, bool]:
    """safe_text applied to every string (and dict key) inside a JSON-like value."""
    if isinstance(value, (str, bytes, bytearray)):
        return safe_text(value)
    if isinstance(value, dict):
        out, changed = {}, False
        for k, v in value.items():
            (k, ck), (v, cv) = safe_text(str(k)), safe_value(v)
            out[k] = v
            changed |= ck or cv
        return out, changed
    if isinstance(value, (list, tuple)):
        pairs = [safe_value(v) for v in value]
        return [v for v, _ in pairs], any(c for _, c in pairs)
    return value, False
