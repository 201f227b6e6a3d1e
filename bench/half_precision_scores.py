"""How far each model filter's scores move when it computes in half precision: the
largest |score - float32 score| over real photos, per filter and dtype. This is what the
tests' tolerance against float32 references must cover (tests/tolerance.py).

    python bench/half_precision_scores.py                 # on CPU (autocast to bfloat16 and float16)
    python bench/half_precision_scores.py --device cuda   # on a GPU too (float32 there = TF32 convolutions)

Each filter runs its real code path with its `compute_dtype` (steps/precision.py) set
to each dtype in turn. Models: the bundled WatermarkNet (real weights); no CLIP weights
ship, so the CLIP filters use a tiny random open_clip model (filters/tiny_open_clip.py):
their figures show the mechanism, not real CLIP's rounding. The open_nsfw and PP-OCR
filters run ONNX Runtime in float32 (no autocast): not listed. The text filter's
optional CRAFT detector (`detector: craft`) autocasts too but is left out: about 4 s per
512 px photo on this CPU.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np

from filter_dev.photos import CLEAN_PHOTOS, load_photo
from pipeline.bench_report import add_readme_option, cpu_model, readme_section


def filters(device: str, tmp: str) -> dict:
    """name -> (set-up filter, the object whose compute_dtype it runs in, the score compared)."""
    import torch

    from filters.aesthetic import AestheticFilter, aesthetic_mlp
    from filters.clip_score import ClipScoreFilter
    from filters.concepts import ConceptFilter
    from filters.nsfw import NsfwFilter, save_clip_head
    from filters.tiny_open_clip import save_tiny_open_clip
    from filters.watermark import WatermarkFilter

    clip = save_tiny_open_clip(tmp, "bench-half-clip", seed=3)
    clip_settings = {k: clip[k] for k in ("clip_model", "clip_config", "clip_weights")}
    torch.manual_seed(0)
    mlp = aesthetic_mlp([32, 16, 8, 4, 2, 1])
    with torch.no_grad():  # as tests/filters/test_aesthetic.py: ratings spread around 5, rarely clipped to 0..10
        mlp[-1].bias.fill_(5.0)
        mlp[0].weight.mul_(20)
    torch.save({f"layers.{k}": v for k, v in mlp.state_dict().items()}, f"{tmp}/aesthetic.pth")
    rng = np.random.default_rng(0)
    save_clip_head(f"{tmp}/head.safetensors", [(rng.normal(0, 0.5, (16, 32)), rng.normal(0, 0.1, 16)),
                                              (rng.normal(0, 0.5, (1, 16)), np.zeros(1))])
    wm = WatermarkFilter.ready(device=device, defer_text_area=None)
    score = ClipScoreFilter.ready(device=device, **clip_settings)
    concepts = ConceptFilter.ready(device=device, **clip_settings)
    aesthetic = AestheticFilter.ready(device=device, model_path=f"{tmp}/aesthetic.pth", **clip_settings)
    nsfw = NsfwFilter.ready(device=device, backend="clip", head_path=f"{tmp}/head.safetensors",  # config registered above
                            clip_model=clip["clip_model"], clip_weights=clip["clip_weights"])
    return {"watermark (WatermarkNet, real)": (wm, wm, "prob"),
            "clip_score (tiny CLIP)": (score, score.encoder, "alt"),
            "concepts (tiny CLIP, softmax over prompts)": (concepts, concepts.encoder, "max"),
            "aesthetic (tiny CLIP + MLP)": (aesthetic, aesthetic.encoder, "score"),
            "nsfw, clip backend (tiny CLIP + head)": (nsfw, nsfw.model.encoder, "prob")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    add_readme_option(ap, __file__)
    args = ap.parse_args(argv)
    with readme_section(args.readme, __file__):
        run(args)


def run(args) -> None:
    import torch

    images = [load_photo(n, 512) for n in CLEAN_PHOTOS]
    meta = [{"caption": "a photo"} for _ in images]
    dtypes = [torch.bfloat16, torch.float16] + ([torch.float32] if args.device.startswith("cuda") else [])
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{cpu_model()}, {torch.get_num_threads()} torch threads"
    print(f"device: {args.device} ({where}); {len(images)} real photos, long side 512; "
          f"max |score - float32 CPU score| (scores in 0..1, aesthetic 0..10)\n")
    print("| filter | score | " + " | ".join(str(d).removeprefix("torch.") + f" on {args.device}" for d in dtypes) + " |")
    print("|---|---|" + "---:|" * len(dtypes))
    with tempfile.TemporaryDirectory() as tmp:
        on_cpu = filters("cpu", tmp)
        on_device = on_cpu if args.device == "cpu" else filters(args.device, tmp)
        for name, (f, runs, score) in on_device.items():
            ref = on_cpu[name][0].score([im.copy() for im in images], meta)[score]
            diffs = []
            for d in dtypes:
                runs.compute_dtype = d
                got = f.score([im.copy() for im in images], meta)[score]
                diffs.append(float(np.nanmax(np.abs(np.asarray(got, dtype=np.float64) - ref))))
            runs.compute_dtype = torch.float32
            print(f"| {name} | {score} | " + " | ".join(f"{x:.1e}" for x in diffs) + " |", flush=True)


if __name__ == "__main__":
    main()
