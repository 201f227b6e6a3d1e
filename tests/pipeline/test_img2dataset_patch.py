"""The img2dataset fetch replacement (pipeline/img2dataset_glue.py) fails at import,
naming the installed and the pinned version, when img2dataset's fetch function or its
call in Downloader.download_shard no longer has exactly the signature it replaces."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import img2dataset.downloader as i2d
import pytest

from pipeline.img2dataset_glue import WRITTEN_FOR, check_fetch_target

ROOT = Path(__file__).resolve().parents[2]


def download_image_with_retry(row, timeout, retries, user_agent_token, disallowed_header_directives, max_bytes=None):
    """Stands in for a newer upstream fetch with one more keyword argument."""


class DownloaderPassingANewKeyword:
    def download_shard(self, loader):
        return [download_image_with_retry(x, timeout=1, retries=0, user_agent_token=None, disallowed_header_directives=None,
                                          max_bytes=5) for x in loader]


class DownloaderFetchingOtherwise:
    def download_shard(self, loader):
        return [i2d.download_image(x, 1, None, None) for x in loader]


def test_the_installed_img2dataset_is_the_pinned_one_and_passes():
    pins = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.startswith("img2dataset==")]
    assert pins == [f"img2dataset=={WRITTEN_FOR}"] and version("img2dataset") == WRITTEN_FOR
    # the module-level name is ours now; upstream's own function and call site pass the check
    from pipeline import img2dataset_glue

    assert i2d.download_image_with_retry is img2dataset_glue._capped_download_image_with_retry
    check_fetch_target(img2dataset_glue._original_fetch, i2d.Downloader.download_shard)


@pytest.mark.parametrize("fetch, downloader, why", [
    (download_image_with_retry, i2d.Downloader, r"download_image_with_retry\(row, .*max_bytes=None\) is not \(row, timeout"),
    ("upstream's", DownloaderPassingANewKeyword, "Downloader.download_shard does not call it with exactly the keywords timeout, retries, "),
    (None, DownloaderFetchingOtherwise, "img2dataset.downloader has no download_image_with_retry; .*no longer calls download_image_with_retry"),
])
def test_a_changed_signature_fails_naming_both_versions(fetch, downloader, why):
    from pipeline import img2dataset_glue

    fetch = img2dataset_glue._original_fetch if fetch == "upstream's" else fetch
    with pytest.raises(ImportError, match=rf"img2dataset {version('img2dataset')} is installed, .* img2dataset {WRITTEN_FOR}: {why}"):
        check_fetch_target(fetch, downloader.download_shard)


def test_no_wandb_folders_are_left_for_an_unclean_exit():
    """img2dataset imports wandb, which makes two temporary folders that only a clean exit
    removes; Ray ends its workers with no clean exit, so each build left them in /tmp.
    Importing the glue (as this module did) removes them at once."""
    from wandb.sdk.artifacts.artifact import Artifact
    from wandb.sdk.data_types._private import MEDIA_TMP

    assert not Path(MEDIA_TMP.name).exists() and not Path(Artifact._TMP_DIR.name).exists()
