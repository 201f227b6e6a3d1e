"""YOLO detector: a yolo11n-architecture net built from its yaml, saved to a .pt and
loaded by path through the same builder a user's weights go through."""

import pytest
from skimage import data

from annotate.detector import DetectorConfig, ObjectDetector
from tests.annotate.tiny_models import save_tiny_yolo
from tests.tolerance import score_atol

PHOTOS = [data.astronaut(), data.chelsea(), data.coffee()[:200], data.rocket()]  # four sizes


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_tiny_yolo(tmp_path_factory.mktemp("yolo") / "tiny.pt")


@pytest.fixture(scope="module")
def detector(weights):
    return ObjectDetector.ready(DetectorConfig(enabled=True, weights=str(weights), conf=0.3, imgsz=160, max_objects=7, device="cpu"))


def test_schema_label_names_and_normalised_boxes(detector):
    assert detector.pool == "model"
    results = detector.annotate(PHOTOS, [{} for _ in PHOTOS])
    assert len(results) == len(PHOTOS)
    for r in results:
        assert r["model"] == "tiny.pt" and r["model_version"].startswith("ultralytics ")
        assert 0 < len(r["items"]) <= 7
        confs = [it["confidence"] for it in r["items"]]
        assert confs == sorted(confs, reverse=True) and min(confs) >= 0.3
        for it in r["items"]:
            assert it["label"] in ("person", "dog", "car")  # names, not class ids
            x0, y0, x1, y1 = it["box"]
            assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1


def test_batched_equals_one_by_one(detector):
    batched = detector.annotate(PHOTOS, [{} for _ in PHOTOS])
    for photo, b in zip(PHOTOS, batched):
        (single,) = detector.annotate([photo], [{}])
        assert [it["label"] for it in single["items"]] == [it["label"] for it in b["items"]]
        for s, t in zip(single["items"], b["items"]):
            assert s["confidence"] == pytest.approx(t["confidence"], abs=score_atol(detector, 1e-3))
            assert s["box"] == pytest.approx(t["box"], abs=score_atol(detector, 1e-3))


def test_classes_filter(weights):
    det = ObjectDetector.ready(DetectorConfig(weights=str(weights), conf=0.3, imgsz=160, classes=["dog"], device="cpu"))
    items = [it for r in det.annotate(PHOTOS, [{} for _ in PHOTOS]) for it in r["items"]]
    assert items and {it["label"] for it in items} == {"dog"}
    with pytest.raises(ValueError, match=r"annotate.objects.classes: \['unicorn'\]"):
        ObjectDetector.ready(DetectorConfig(weights=str(weights), classes=["unicorn"]))


def test_missing_weights_name_the_setting(tmp_path):
    # a bare name not on this machine: ultralytics would download it; offline that fails
    with pytest.raises(RuntimeError, match=r"annotate.objects.weights: could not load 'yolo11n.pt'.*weights dir"):
        ObjectDetector.ready(DetectorConfig())
    with pytest.raises(FileNotFoundError, match=r"annotate.objects.weights: .*nope.pt does not exist"):
        ObjectDetector.ready(DetectorConfig(weights=str(tmp_path / "nope.pt")))


def test_batch_size_is_honoured(detector):
    """4 photos at batch_size 3: two forward passes of the YOLO net (3, 1), the objects of one pass over all 4."""
    from tests.model_calls import assert_honours_batch_size, counted

    detector.annotate(PHOTOS[:1], [{}])  # ultralytics' predictor (which holds its own copy of the net) exists after a first call
    with counted(detector.model.predictor.model, "forward", lambda x, *a, **kw: len(x)) as calls:
        assert_honours_batch_size(detector, PHOTOS, [{} for _ in PHOTOS], calls, 3, score_atol(detector))
