"""A corrupt image is a recorded decode_error in every process, including one where
ultralytics (the detector) has been imported: it patches PIL's Image.open to retry
unknown files with a HEIF plugin that is not installed, raising ModuleNotFoundError."""

from __future__ import annotations

import pytest

from pipeline.decode import DecodeError, prepare_image
from tests.pipeline import hostile


@pytest.mark.parametrize("name", ["corrupt.jpg", "page.jpg", "empty.jpg"])
def test_corrupt_bytes_fail_as_decode_error_after_ultralytics_import(name):
    import ultralytics.utils.patches  # noqa: F401  what `import ultralytics` does to PIL

    payloads = hostile.hostile_payloads()
    if name not in payloads:
        pytest.fail(f"hostile payload {name} missing: {sorted(payloads)}")
    with pytest.raises(DecodeError) as err:
        prepare_image(payloads[name][1], 256, 90, 10**8)
    assert err.value.reason == "decode_error"
