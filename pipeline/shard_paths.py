"""Shard lists from what a user writes: brace patterns (`out/{00000..00099}.tar`), globs,
and, where the reader can open them, `pipe:` commands and remote URLs. One function for
the build's webdataset sources (local files only) and the trainer's data settings."""

from __future__ import annotations

import glob
import os

import braceexpand


def expand_shards(spec: str | list[str], setting: str, error: type[Exception] = ValueError,
                  local_only: bool = False) -> list[str]:
    """Patterns -> a non-empty list of shard paths or URLs, every local one existing.
    `setting` names the config field in messages; `error` is the exception raised."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    if not specs:
        raise error(f"{setting}: empty shard list; give at least one shard path or pattern")
    urls: list[str] = []
    for s in specs:
        expanded, missing = list(braceexpand.braceexpand(s)), []
        for url in expanded:
            if url.startswith("pipe:") or "://" in url:
                if local_only:
                    raise error(f"{setting}: {url!r} is a command or a remote URL; this reader opens local "
                                f"shard files only: download the shards first")
                urls.append(url)  # remote or a command: checked when opened
            elif any(c in url for c in "*?["):
                found = sorted(glob.glob(url))
                if not found:
                    raise error(f"{setting}: no shard matches {url!r}; check the path (relative to {os.getcwd()})")
                urls += found
            elif not os.path.isfile(url):
                missing.append(url)
            else:
                urls.append(url)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise error(f"{setting}: {len(missing)} of {len(expanded)} shard files from {s!r} do not exist, e.g. "
                        f"{missing[0]}{more}; check the path and the brace range")
    return urls
