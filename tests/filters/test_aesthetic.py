"""AestheticFilter: the LAION improved aesthetic predictor's layer stack (keys and shapes
of the published state dict), and a tiny predictor of the same layout for a tiny CLIP's
width, saved as a state dict and loaded through `model_path`: the score is the MLP on the
normalised embedding clipped to 0..10, the threshold (off by default) rejects below it,
and a wrong file or width fails naming the setting."""

import numpy as np
import pytest
import torch
from PIL import Image

from filter_dev.photos import load_photo
from filters.aesthetic import AestheticFilter, aesthetic_mlp
from filters.tiny_open_clip import save_tiny_open_clip
from tests.tolerance import assert_scores_close

PUBLISHED = {"layers.0.weight": (1024, 768), "layers.2.weight": (128, 1024), "layers.4.weight": (64, 128),
             "layers.6.weight": (16, 64), "layers.7.weight": (1, 16)}


class _Published(torch.nn.Module):  # the repository's own wrapper: its state dict keys start with "layers."
    def __init__(self, widths):
        super().__init__()
        self.layers = aesthetic_mlp(widths)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("aesthetic")
    clip = save_tiny_open_clip(d, "tiny-aesthetic-clip", seed=4)
    torch.manual_seed(0)
    mlp = _Published([32, 16, 8, 4, 2, 1])
    with torch.no_grad():
        mlp.layers[-1].bias.fill_(5.0)  # centred in 0..10 like real ratings, so clipping rarely bites
        mlp.layers[0].weight.mul_(20)  # spread the scores
    torch.save(mlp.state_dict(), d / "tiny_aesthetic.pth")
    return {**clip, "model_path": str(d / "tiny_aesthetic.pth"), "mlp": mlp.layers.eval(), "dir": d}


def _ready(tiny, model_path=None):
    return AestheticFilter.ready(device="cpu", model_path=model_path or tiny["model_path"],
                                 **{k: tiny[k] for k in ("clip_model", "clip_config", "clip_weights")})


def test_published_layout():
    shapes = {k: tuple(v.shape) for k, v in _Published([768, 1024, 128, 64, 16, 1]).state_dict().items() if k.endswith("weight")}
    assert shapes == PUBLISHED


def test_score_is_the_predictor_on_the_clip_embedding(tiny):
    f = _ready(tiny)
    assert f.score_columns == ["aesthetic_score"] and f.cfg.threshold == 0.0
    images = [load_photo(n, 256) for n in ("astronaut", "chelsea", "coffee", "rocket")]
    s = f.score(images, [{} for _ in images])["score"]
    with torch.no_grad():
        x = torch.stack([f.encoder.preprocess(Image.fromarray(im)) for im in images])
        e = torch.nn.functional.normalize(tiny["model"].encode_image(x), dim=-1)
        expected = np.clip(tiny["mlp"](e)[:, 0].numpy(), 0, 10)
    assert_scores_close(s, expected, f.encoder, float32=1e-4, scale=10)
    assert ((s >= 0) & (s <= 10)).all() and s.std() > 1e-3, s  # distinct scores: the threshold below splits them
    assert f.keep({"score": s}).all()  # off by default
    cut = float(np.median(s))
    strict = AestheticFilter(f.cfg.model_copy(update={"threshold": cut}))  # deciding needs no model
    assert strict.keep({"score": s}).tolist() == (s >= cut).tolist()


def test_errors_name_the_setting(tiny):
    with pytest.raises(ValueError, match=r"filters\.aesthetic\.model_path: required"):
        AestheticFilter.ready(device="cpu")
    wide = tiny["dir"] / "wide.pth"
    torch.save(_Published([64, 16, 8, 4, 2, 1]).state_dict(), wide)
    with pytest.raises(RuntimeError, match=r"filters\.aesthetic\.model_path: the predictor takes 64-d embeddings, .* gives 32-d"):
        _ready(tiny, str(wide))
    bad = tiny["dir"] / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(RuntimeError, match=r"filters\.aesthetic\.model_path: could not load"):
        _ready(tiny, str(bad))
