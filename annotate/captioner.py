"""Image captioner annotator: a transformers image-to-text model -> `json.annotations["caption"]`.

`annotate.caption.model` is a hub id or a local folder (`save_pretrained` output);
transformers loads it from the folder, else its hub cache, else the hub (offline:
`HF_HUB_OFFLINE=1`, the cache only; a miss fails at start-up naming this setting).
Any model that `AutoProcessor` + `AutoModelForImageTextToText` load and whose
`generate` takes the processor's output works: BLIP (default,
`Salesforce/blip-image-captioning-base`), Florence-2 (`florence-community/Florence-2-base`,
task prompt `<MORE_DETAILED_CAPTION>` by default), GIT, ...

One `generate` call per batch (greedy or beam search, no sampling: deterministic), in
bfloat16 on a GPU that supports it (else float16), float32 on CPU.

Result: {"model", "model_version", "text"}.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from annotate.base import Annotator, AnnotatorConfig
from steps.devices import half_dtype, torch_device
from steps.registry import register_step

_SETTING = "annotate.caption"
DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
# models captioned by a task prompt, not free text
DEFAULT_PROMPTS = {"florence2": "<MORE_DETAILED_CAPTION>"}


class CaptionerConfig(AnnotatorConfig):
    model: str = Field(DEFAULT_MODEL, description="hub id or local folder of an image-to-text model (BLIP, Florence-2, GIT, ...)")
    prompt: str | None = Field(None, description="text prompt (BLIP: a caption prefix; Florence-2: a task token); unset = the model's default")
    max_new_tokens: int = Field(40, ge=1, le=1024)
    num_beams: int = Field(3, ge=1, le=16)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto = bfloat16 (or float16) on GPU, float32 on CPU")


def pick_dtype(dtype: str, device):
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device.type != "cuda":
        return torch.float32
    return half_dtype()


def load_captioner(name: str, dtype):
    """(processor, model) from a local folder, the hub cache or the hub."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name)
        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype)
    except Exception as exc:
        raise RuntimeError(
            f"{_SETTING}.model: could not load {name!r} ({type(exc).__name__}: {exc}); set it to a local folder "
            f"holding a saved image-to-text model and its processor, or get the weights once with network "
            f"(`hf download {name}`, or a run without HF_HUB_OFFLINE=1) so they are in the hub cache"
        ) from exc
    return processor, model


@register_step("caption", order=20)
class Captioner(Annotator):
    Config = CaptionerConfig

    def setup(self):
        c = self.cfg
        self.device = torch_device(c.device)
        self.dtype = pick_dtype(c.dtype, self.device)
        self.processor, model = load_captioner(c.model, self.dtype)
        self.model = model.to(self.device, self.dtype).eval()
        cfg = model.config
        self.model_version = getattr(cfg, "_commit_hash", None) or f"{cfg.model_type}"
        self.prompt = c.prompt if c.prompt is not None else DEFAULT_PROMPTS.get(cfg.model_type)

    def inputs(self, images: list[np.ndarray]):
        kwargs = {"images": list(images), "return_tensors": "pt"}
        if self.prompt:
            kwargs["text"] = [self.prompt] * len(images)
        batch = self.processor(**kwargs).to(self.device)
        batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
        return batch

    def annotate(self, images, meta):
        import torch

        if not images:
            return []
        batch = self.inputs(images)
        with torch.inference_mode():
            out = self.model.generate(**batch, max_new_tokens=self.cfg.max_new_tokens, num_beams=self.cfg.num_beams, do_sample=False)
        if not self.model.config.is_encoder_decoder and "input_ids" in batch and out.shape[1] > batch["input_ids"].shape[1] \
                and torch.equal(out[:, : batch["input_ids"].shape[1]], batch["input_ids"]):
            out = out[:, batch["input_ids"].shape[1]:]  # decoder-only models (GIT) echo the prompt
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [{"model": self.cfg.model, "model_version": self.model_version, "text": self._clean(t)} for t in texts]

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())
        # BLIP returns its text prompt ("a photography of") as the caption's start
        if self.prompt and not self.prompt.startswith("<") and text.lower().startswith(self.prompt.lower()):
            text = text[len(self.prompt):].strip()
        return text
