"""The shapes of ``meta`` seen in real Civitai data, made deterministically for the fake dataset.

Each shape is a name (see ``SHAPES``); :func:`build_meta` turns a shape plus a seeded RNG into the
dict the API would send. :func:`a1111_infotext` writes the text A1111 stores in a PNG ``parameters``
chunk, so some originals carry their own generation data like real uploads do.
"""

from __future__ import annotations

import json
import random
from typing import Any, Dict, List, Optional, Sequence

# Shape name -> relative weight in the default dataset.
SHAPES: Dict[str, int] = {
    "a1111": 30,  # full A1111 meta: clipSkip int, hashes with lora:, resources, civitaiResources
    "a1111_clip_skip_string": 8,  # "Clip skip": "2" instead of clipSkip
    "numbers_as_strings": 6,  # seed/steps/cfgScale sent as strings
    "model_object": 3,  # "Model": {"meina_belly_7": "3mix"}
    "comfy": 6,  # a "comfy" JSON string next to a few plain keys
    "unicode_multiline": 8,  # unicode, newlines, commas, colons and quotes in the prompts
    "minimal": 6,  # prompt and seed only
    "null": 8,  # no generation data at all
    "hidden": 6,  # the author hid it: null even with withMeta=true
}

SAMPLERS = ("Euler a", "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM", "UniPC", "Euler")
UPSCALERS = ("4x-UltraSharp", "R-ESRGAN 4x+ Anime6B", "Latent")
SUBJECTS = ("a lighthouse at dusk", "portrait of a knight", "cyberpunk street", "forest spirit")
STYLES = ("masterpiece", "best quality", "highly detailed", "cinematic lighting", "8k", "bokeh")
NEGATIVES = ("lowres", "bad anatomy", "bad hands", "text", "error", "jpeg artifacts", "blurry")
UNICODE_PROMPTS = (
    '1girl, 桜の木の下で, "smiling", (detailed eyes:1.2),\nBREAK\nscenery: mountains, 夕焼け',
    'Ünïcödé café, naïve façade — «quoted», emoji 🌸✨, weight: 0.8\nsecond line, "third: item"',
    'Москва, ночь: неон, "дождь"\n<lora:detail_tweaker:0.6>, 8k, \u00a0non-breaking space',
)


#: Shapes of Civitai's 2026 parsers, given to some images after the dataset is drawn (so the
#: random stream, and every other image, stays as it was): see ``builders._real_2026_shapes``.
SHAPES_2026 = ("civitai_2026", "comfy_2026")
COMFY_SAMPLERS = (
    ("euler_ancestral", "normal"),
    ("dpmpp_2m", "karras"),
    ("dpmpp_2m_sde_gpu", "exponential"),
    ("dpmpp_sde", "sgm_uniform"),
    ("euler", "simple"),
    ("uni_pc", "ddim_uniform"),
    ("dpmpp_3m_sde_gpu", "beta"),
    ("lcm", "normal"),
)
EMBEDDINGS = ("easynegative", "badhandv4", "FastNegativeV2")


def pick_shape(rng: random.Random) -> str:
    names = list(SHAPES)
    return rng.choices(names, weights=[SHAPES[n] for n in names])[0]


def _hash10(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(10))


def _prompt(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS)] + rng.sample(STYLES, 3)
    return ", ".join(parts)


def build_meta(
    shape: str,
    rng: random.Random,
    width: int,
    height: int,
    model_name: str,
    lora_names: Sequence[str],
    version_ids: Sequence[int],
) -> Optional[Dict[str, Any]]:
    """The ``meta`` dict for one image of ``shape`` (None for ``null``).

    A ``hidden`` image still has full A1111 data (its original PNG may carry it); the API simply
    never shows it.
    """
    if shape == "null":
        return None
    seed = rng.randrange(1, 2**32)
    steps = rng.choice((20, 25, 28, 30, 40))
    cfg = rng.choice((5, 6.5, 7, 7.5, 9))
    sampler = rng.choice(SAMPLERS)
    size = f"{width}x{height}"
    if shape == "minimal":
        return {"prompt": _prompt(rng), "seed": seed}
    if shape == "comfy":
        graph = _comfy_graph(rng, seed, steps, cfg, width, height, model_name)
        return {
            "prompt": graph["6"]["inputs"]["text"],
            "negativePrompt": graph["7"]["inputs"]["text"],
            "seed": seed,
            "steps": steps,
            "cfgScale": cfg,
            "sampler": "euler_ancestral",
            "comfy": json.dumps({"prompt": graph, "workflow": {"nodes": len(graph)}}),
        }
    meta: Dict[str, Any] = {
        "prompt": _prompt(rng),
        "negativePrompt": ", ".join(rng.sample(NEGATIVES, 4)),
        "seed": seed,
        "steps": steps,
        "sampler": sampler,
        "cfgScale": cfg,
        "Size": size,
        "Model": model_name.replace(" ", "_")[:60],
        "Model hash": _hash10(rng),
    }
    loras = list(lora_names[: rng.randint(0, min(2, len(lora_names)))])
    if shape in ("a1111", "hidden", "unicode_multiline", "model_object"):
        meta["clipSkip"] = rng.choice((1, 2))
        meta["hashes"] = {"model": meta["Model hash"]}
        for lora in loras:
            meta["hashes"][f"lora:{lora}"] = _hash10(rng)
        meta["resources"] = [{"type": "model", "name": meta["Model"], "hash": meta["Model hash"]}]
        meta["resources"] += [
            {"type": "lora", "name": lora, "weight": rng.choice((0.6, 0.8, 1))} for lora in loras
        ]
        meta["civitaiResources"] = [{"type": "checkpoint", "modelVersionId": version_ids[0]}] + [
            {"type": "lora", "weight": 0.8, "modelVersionId": v} for v in version_ids[1:2]
        ]
        if rng.random() < 0.4:
            meta["Denoising strength"] = "0.4"
            meta["Hires upscale"] = "2"
            meta["Hires upscaler"] = rng.choice(UPSCALERS)
        if rng.random() < 0.3:
            meta["ENSD"] = "31337"
    if shape == "a1111_clip_skip_string":
        meta["Clip skip"] = str(rng.choice((1, 2)))
    if shape == "numbers_as_strings":
        meta["seed"] = str(seed)
        meta["steps"] = str(steps)
        meta["cfgScale"] = str(cfg)
        meta["Clip skip"] = "2"
    if shape == "model_object":
        meta["Model"] = {"meina_belly_7": "3mix"}
    if shape == "unicode_multiline":
        meta["prompt"] = rng.choice(UNICODE_PROMPTS)
        meta["negativePrompt"] = 'worst quality, "bad: hands",\nwatermark, 低品質'
    return meta


def _comfy_graph(rng, seed, steps, cfg, width, height, model_name) -> Dict[str, Any]:
    return {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": cfg,
                "sampler_name": "euler_ancestral",
                "scheduler": "normal",
                "denoise": 1,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": f"{model_name[:40]}.safetensors"},
        },
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": width, "height": height, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": _prompt(rng), "clip": ["4", 1]}},
        "7": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "blurry, lowres", "clip": ["4", 1]},
        },
    }


def _quote(value: Any) -> str:
    text = str(value)
    if any(ch in text for ch in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def a1111_infotext(meta: Dict[str, Any]) -> str:
    """The ``parameters`` text A1111 writes into a PNG for ``meta`` (prompt, negative, params)."""
    keys = (
        ("steps", "Steps"),
        ("sampler", "Sampler"),
        ("cfgScale", "CFG scale"),
        ("seed", "Seed"),
        ("Size", "Size"),
        ("Model hash", "Model hash"),
        ("Model", "Model"),
        ("clipSkip", "Clip skip"),
        ("Clip skip", "Clip skip"),
        ("Denoising strength", "Denoising strength"),
        ("Hires upscale", "Hires upscale"),
        ("Hires upscaler", "Hires upscaler"),
        ("ENSD", "ENSD"),
    )
    params: List[str] = []
    for source, label in keys:
        value = meta.get(source)
        if value is not None and not isinstance(value, dict):
            params.append(f"{label}: {_quote(value)}")
    loras = {k[5:]: v for k, v in (meta.get("hashes") or {}).items() if k.startswith("lora:")}
    if loras:
        params.append("Lora hashes: " + _quote(", ".join(f"{k}: {v}" for k, v in loras.items())))
    lines = [meta.get("prompt", "")]
    if meta.get("negativePrompt"):
        lines.append(f"Negative prompt: {meta['negativePrompt']}")
    lines.append(", ".join(params))
    return "\n".join(lines)


def _digest(*parts: Any) -> int:
    import hashlib

    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest(), 16)


def _hex(seed: int, length: int = 10) -> str:
    return f"{_digest('hex', seed):064x}"[:length]


def civitai_2026(meta: Dict[str, Any], image_id: int, width: int, height: int) -> Dict[str, Any]:
    """An A1111 ``meta`` as Civitai's 2026 parser sends it: ``width``/``height`` (the size before
    hires fix) instead of ``Size``, ``TI hashes`` as an object, ``hashes.vae``, hash keys in any
    case, and Civitai's own keys (``Created Date``)."""
    out = {k: v for k, v in meta.items() if k != "Size"}
    upscale = 2 if _digest("hires", image_id) % 2 == 0 else None
    if upscale:  # a hires-fixed upload: the file is twice the generation size
        out["Hires upscale"] = str(upscale)
        out["Hires upscaler"] = "Latent"
        out["Denoising strength"] = "0.5"
    out["width"], out["height"] = (
        (width // upscale, height // upscale) if upscale else (width, height)
    )
    hashes: Dict[str, Any] = {}
    for key, value in (meta.get("hashes") or {}).items():
        if key.startswith("lora:") and _digest("case", image_id, key) % 2 == 0:
            key = "LORA:" + key[5:]
        hashes[key] = value
    if "model" in hashes and _digest("Model", image_id) % 3 == 0:
        hashes["Model"] = hashes.pop("model")
    hashes["vae"] = _hex(image_id)
    embed = EMBEDDINGS[image_id % len(EMBEDDINGS)]
    hashes[f"embed:{embed}"] = _hex(image_id + 1, 12)
    out["hashes"] = hashes
    out["TI hashes"] = {EMBEDDINGS[(image_id + 1) % len(EMBEDDINGS)]: _hex(image_id + 2, 12)}
    out["Created Date"] = "2026-04-01T10:00:00.000Z"
    if _digest("schedule", image_id) % 2 == 0:
        out["Schedule type"] = "Karras"
        out["sampler"] = "DPM++ 2M"
    return out


def comfy_2026(meta: Dict[str, Any], image_id: int, width: int, height: int) -> Dict[str, Any]:
    """A ComfyUI ``meta`` as Civitai sends it in 2026: ComfyUI sampler and scheduler names,
    ``width``/``height``, generator keys (``denoise``, ``engine``, ``workflow``, ``extra``...), and
    a ``comfy`` string built by a template that writes ``"workflow": undefined``."""
    sampler, scheduler = COMFY_SAMPLERS[image_id % len(COMFY_SAMPLERS)]
    out = {k: v for k, v in meta.items() if k != "comfy"}
    graph = json.loads(meta["comfy"])["prompt"] if "comfy" in meta else {}
    if "3" in graph:
        graph["3"]["inputs"]["sampler_name"] = sampler
        graph["3"]["inputs"]["scheduler"] = scheduler
    out.update(
        {
            "sampler": sampler,
            "scheduler": scheduler,
            "width": width,
            "height": height,
            "denoise": 1,
            "engine": "comfy",
            "workflow": "txt2img",
            "extra": {"remixOfId": None},
            "upscalers": [],
            "vaes": ["sdxl_vae.safetensors"],
            "Created Date": "2026-05-02T08:30:00.000Z",
            "comfy": '{"prompt": ' + json.dumps(graph) + ', "workflow": undefined}',
        }
    )
    return out
