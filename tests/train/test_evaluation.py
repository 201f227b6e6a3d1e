"""CLIP score and FID: the real loading code on tiny random models saved to disk (no weights
can be downloaded here), and FID against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from tests.train.tiny_clip import build_tiny_clip, save_clip
from train.encoders import ModelLoadError
from train.evaluation import ClipScorer, EvalConfig, Evaluator, FIDFeatures, fid

PROMPTS = ["a red square", "a blue square"]


def coloured_squares(colour: str, n: int, seed: int) -> torch.Tensor:
    """(n, 3, 32, 32) uint8: noisy red or blue images."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand((n, 3, 32, 32), generator=gen) * 0.3
    images[:, 0 if colour == "red" else 2] += 0.7
    return (images * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIPModel trained for a few steps to pair red images with "a red square" and blue
    with "a blue square" (through the processor's usual uint8 path), saved like a hub checkpoint."""
    model, tok, processor = build_tiny_clip()
    text_in = tok(PROMPTS, padding=True, return_tensors="pt")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(20):
        images = torch.cat([coloured_squares("red", 1, step), coloured_squares("blue", 1, 1000 + step)])
        pixels = processor(images=images, return_tensors="pt").pixel_values
        loss = model(input_ids=text_in.input_ids, attention_mask=text_in.attention_mask, pixel_values=pixels, return_loss=True).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", model, tok, processor)


def test_clip_score_is_the_clamped_cosine_of_the_models_own_embeddings(clip_dir):
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    images_u8 = torch.cat([coloured_squares("red", 3, 1), coloured_squares("blue", 3, 2)])
    prompts = ["a red square", "a blue square", "a photo of a dog"] * 2
    got = ClipScorer(str(clip_dir)).score(images_u8.float() / 255, prompts)
    # By hand, from the checkpoint as transformers' documentation uses it (uint8 images in).
    model = CLIPModel.from_pretrained(clip_dir).eval()
    tok = AutoTokenizer.from_pretrained(clip_dir)(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        img = model.get_image_features(pixel_values=AutoImageProcessor.from_pretrained(clip_dir)(images=images_u8, return_tensors="pt").pixel_values)
        txt = model.get_text_features(input_ids=tok.input_ids, attention_mask=tok.attention_mask)
    img, txt = (x if isinstance(x, torch.Tensor) else x.pooler_output for x in (img, txt))
    cos = (img * txt).sum(-1) / (img.norm(dim=-1) * txt.norm(dim=-1))
    assert got.shape == (6,)
    torch.testing.assert_close(got, 100 * cos.clamp(min=0), atol=1e-3, rtol=1e-4)
    assert ((got >= 0) & (got <= 100)).all()


def test_clip_score_prefers_the_matching_prompt(clip_dir):
    scorer = ClipScorer(str(clip_dir))
    red = coloured_squares("red", 4, 7).float() / 255  # unseen noise
    blue = coloured_squares("blue", 4, 8).float() / 255
    assert (scorer.score(red, ["a red square"] * 4) > scorer.score(red, ["a blue square"] * 4) + 5).all()
    assert (scorer.score(blue, ["a blue square"] * 4) > scorer.score(blue, ["a red square"] * 4) + 5).all()


def test_fid_is_zero_against_itself_and_the_squared_shift_against_a_shifted_copy():
    x = np.random.default_rng(0).normal(size=(64, 16))
    assert abs(fid(x, x)) < 1e-6
    # A shift moves only the mean: FID = ||shift||^2 = 16 * 1^2.
    assert fid(x, x + 1.0) == pytest.approx(16.0, abs=1e-6)


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    # Rows +-c_j e_j around a mean have an exactly diagonal sample covariance, 2 c_j^2 / (n - 1)
    # (n = 4 rows): A = (6, 2/3) around (1, 0), B = (2/3, 2/3) around (0, 2). For diagonal
    # covariances FID = ||mu_a - mu_b||^2 + sum_j (sd_a_j - sd_b_j)^2 = 5 + (sqrt 6 - sqrt(2/3))^2 = 5 + 8/3.
    a = np.array([[3, 0], [-3, 0], [0, 1], [0, -1]], float) + [1, 0]
    b = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float) + [0, 2]
    assert fid(a, b) == pytest.approx(23 / 3, abs=1e-6)
    assert fid(b, a) == pytest.approx(23 / 3, abs=1e-6)


def test_fid_is_defined_with_fewer_samples_than_feature_dims():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.3
    # Reference: tr (S_a S_b)^(1/2) = sum of square roots of the eigenvalues of S_a S_b (real, >= 0).
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvals(sa @ sb).real, 0, None)).sum()
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt
    assert math.isfinite(fid(a, b))
    assert fid(a, b) == pytest.approx(expected, rel=1e-5)
    assert abs(fid(a, a)) < 1e-4 * np.trace(sa)
    with pytest.raises(ValueError, match="at least 2"):
        fid(a[:1], b)


def test_timm_fid_features_load_the_weights_file(tmp_path):
    """The Inception path a user takes with the FID weights (a model name + a .pth file), on timm's tiny test_resnet."""
    import timm

    torch.manual_seed(3)
    trained = timm.create_model("test_resnet").eval()  # with its classifier, like a real checkpoint
    torch.save(trained.state_dict(), tmp_path / "weights.pth")
    features = FIDFeatures("test_resnet", kind="timm", weights=str(tmp_path / "weights.pth"))
    images = torch.rand((2, 3, 40, 40), generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.interpolate(images, size=(160, 160), mode="bilinear", antialias=True)
    with torch.no_grad():
        expected = trained.forward_head(trained.forward_features((x - 0.5) / 0.5), pre_logits=True)
    got = features(images)
    assert got.shape == (2, trained.num_features)
    torch.testing.assert_close(got.float(), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ModelLoadError, match="evaluation.fid_weights"):
        FIDFeatures("test_resnet", kind="timm", weights=str(tmp_path / "missing.pth"))


def test_a_file_laid_out_like_the_fid_inception_weights_loads_into_timm(tmp_path):
    """pt_inception-2015-12-05-6726825d.pth (pytorch-fid) is a torchvision Inception3 state dict
    with 1008 classes and no AuxLogits. A random one in that layout loads into timm's inception_v3,
    whose pooled features then equal torchvision's network on the same input."""
    from torchvision.models.inception import Inception3

    torch.manual_seed(4)
    reference = Inception3(num_classes=1008, aux_logits=False, init_weights=True).eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "pt_inception.pth")
    features = FIDFeatures("inception_v3.tf_in1k", kind="timm", weights=str(tmp_path / "pt_inception.pth"))
    images = torch.rand((1, 3, 48, 48), generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.interpolate(images, size=(299, 299), mode="bilinear", antialias=True)
    reference.fc = torch.nn.Identity()  # pool3: the 2048-d features FID uses
    with torch.no_grad():
        expected = reference((x - 0.5) / 0.5)
    got = features(images)
    assert got.shape == (1, 2048)
    torch.testing.assert_close(got.float(), expected, rtol=1e-4, atol=0)


def test_missing_model_names_the_setting(tmp_path):
    with pytest.raises(ModelLoadError, match="evaluation.clip_model"):
        Evaluator(EvalConfig(prompts=["a cat"], clip_model=str(tmp_path / "no-such-clip")))
    with pytest.raises(ModelLoadError, match="evaluation.fid_model"):
        Evaluator(EvalConfig(prompts=["a cat", "a dog"], fid_model=str(tmp_path / "no-such-clip")))


def test_config_rejects_typos_and_reads_a_prompt_file(tmp_path):
    with pytest.raises(ValidationError, match=r"clip_modle[\s\S]*Extra inputs are not permitted"):
        EvalConfig(prompts=["a cat"], clip_modle="openai/clip-vit-large-patch14")
    with pytest.raises(ValidationError, match="nothing to evaluate"):
        EvalConfig(prompts=["a cat"])
    with pytest.raises(ValidationError, match="no file"):
        EvalConfig(prompts=str(tmp_path / "missing.txt"), clip_model="x")
    with pytest.raises(ValidationError, match="fid_weights is for fid_model_kind: timm"):
        EvalConfig(prompts=["a", "b"], fid_model="x", fid_weights="w.pth")
    with pytest.raises(ValidationError, match="FID needs at least 2"):
        EvalConfig(prompts=["a cat"], fid_model="x")
    (tmp_path / "prompts.txt").write_text("a red square\n\n  a blue square  \n")
    assert EvalConfig(prompts=str(tmp_path / "prompts.txt"), clip_model="x").prompt_list() == PROMPTS


def random_images(prompts: list[str], seed: int) -> torch.Tensor:
    """A stand-in text-to-image model: any callable (prompts, seed) -> images in [0, 1] will do."""
    return torch.rand((len(prompts), 3, 32, 32), generator=torch.Generator().manual_seed(seed))


def test_evaluator_is_deterministic_and_reports_only_configured_metrics(clip_dir):
    reals = [random_images(["r"] * 8, 100 + i) for i in range(2)]
    calls = []

    def generate(prompts, seed):
        calls.append((list(prompts), seed))
        return random_images(prompts, seed)

    cfg = EvalConfig(prompts=PROMPTS, clip_model=str(clip_dir), fid_model=str(clip_dir), num_images=16, batch_size=6, seed=5)
    evaluator = Evaluator(cfg)
    assert evaluator.fid_features.clip is evaluator.clip  # one CLIPModel for both metrics
    first = evaluator.run(generate, reals)
    assert set(first) == {"eval/clip_score", "eval/fid"}
    assert 0 <= first["eval/clip_score"] <= 100 and first["eval/fid"] > 0
    # Prompts cycle to num_images in batches of batch_size; batch i gets seed + i.
    assert [seed for _, seed in calls] == [5, 6, 7] and [len(p) for p, _ in calls] == [6, 6, 4]
    assert calls[0][0] == PROMPTS * 3
    # The same numbers again (real statistics cached), and from a fresh evaluator.
    assert evaluator.run(generate, None) == first
    assert Evaluator(cfg).run(random_images, reals) == first
    assert Evaluator(cfg.model_copy(update={"seed": 6})).run(random_images, reals)["eval/fid"] != first["eval/fid"]
    # Real images unlike the generated ones (dark) are further away.
    dark = [r * 0.2 for r in reals]
    assert Evaluator(cfg).run(random_images, dark)["eval/fid"] > 2 * first["eval/fid"]

    only_clip = Evaluator(EvalConfig(prompts=PROMPTS, clip_model=str(clip_dir))).run(random_images)
    assert set(only_clip) == {"eval/clip_score"}
