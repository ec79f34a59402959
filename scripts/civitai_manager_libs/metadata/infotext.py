"""A1111 "infotext": write a generation record in WebUI's layout and read such text back.

The layout is the one Stable Diffusion WebUI puts in PNG Info and pastes into txt2img::

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: abc, Model: m

The parameters line is ``key: value`` pairs joined by ``", "``. A value that the reader could
mis-split (one holding ``,``, ``:`` or a newline, or one that starts with a quote or has surrounding
whitespace) is written as a JSON string. The reader follows WebUI's ``parse_generation_parameters``:
the last line counts as parameters only when :data:`PARAM_RE` finds at least three pairs in it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .generation import extract_generation
from .resources_text import localized_generation

log = logging.getLogger(__name__)

#: WebUI's own parameter regex (modules/infotext_utils.py ``re_param_code``).
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
#: Keys we can write so that PARAM_RE reads exactly the same key back.
_KEY_RE = re.compile(r"\w[\w \-/]*[\w\-/]")
NEGATIVE_PREFIX = "Negative prompt:"
#: WebUI treats the last line as parameters only when it holds at least this many pairs.
MIN_PARAMETERS = 3

# Normalized generation field -> infotext label, in WebUI's create_infotext order.
_LEADING = (
    ("steps", "Steps"),
    ("sampler", "Sampler"),
    ("Schedule type", "Schedule type"),
    ("cfg_scale", "CFG scale"),
    ("seed", "Seed"),
    ("size", "Size"),
    ("model_hash", "Model hash"),
    ("model", "Model"),
    ("VAE hash", "VAE hash"),
    ("VAE", "VAE"),
    ("Denoising strength", "Denoising strength"),
    ("clip_skip", "Clip skip"),
)
#: Labels produced from the normalized fields; extra keys with these names are not repeated.
_RESERVED = {label for _, label in _LEADING} | {"Prompt", "Negative prompt"}

# Civitai ``meta`` keys that map to WebUI labels when a raw meta dict is given.
CIVITAI_KEY_MAP = {
    "seed": "Seed",
    "steps": "Steps",
    "sampler": "Sampler",
    "cfgScale": "CFG scale",
    "clipSkip": "Clip skip",
}


def quote(value: str) -> str:
    """Quote ``value`` as a JSON string when the parameters regex could not read it back as is.

    WebUI quotes values holding ``,``, ``:`` or a newline; a value that starts with a quote or has
    surrounding whitespace is quoted too, so that reading it back gives exactly the same text.
    """
    if any(c in value for c in ',:\n\r') or value.startswith('"') or value != value.strip():
        return json.dumps(value, ensure_ascii=False)
    return value


def unquote(value: str) -> str:
    """Undo :func:`quote`: a value wrapped in double quotes is read as a JSON string."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    return decoded if isinstance(decoded, str) else value


def format_value(value: Any) -> Optional[str]:
    """Text for one parameter value, or None when the value has no place on the parameters line."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return None  # dicts and lists (resources, comfy graphs, ...) stay in the JSON sidecar


def _generation_of(record_or_generation: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    if "generation" in record_or_generation:
        generation = record_or_generation.get("generation")
        return generation if isinstance(generation, Mapping) else None
    if "extra" not in record_or_generation:
        # A raw Civitai ``meta`` dict (cfgScale, clipSkip, ...): normalize it first.
        return extract_generation(record_or_generation)
    return record_or_generation


def _extra_hashes_line(hashes: Mapping[str, Any], prefix: str) -> Optional[str]:
    pairs = [
        f"{key[len(prefix):]}: {value}"
        for key, value in hashes.items()
        if isinstance(key, str) and key.startswith(prefix) and isinstance(value, str) and value
    ]
    return ", ".join(pairs) if pairs else None


def parameter_pairs(generation: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The ``(label, text)`` pairs of the parameters line, in WebUI's order."""
    extra_value = generation.get("extra")
    extra: Mapping[str, Any] = extra_value if isinstance(extra_value, Mapping) else {}
    pairs: List[Tuple[str, str]] = []
    seen = set()

    def add(label: str, value: Any) -> None:
        text = format_value(value)
        if text is None or label in seen:
            return
        if not _KEY_RE.fullmatch(label):
            log.debug("infotext: key %r cannot be written on a parameters line; left out", label)
            return
        seen.add(label)
        pairs.append((label, text))

    for field, label in _LEADING:
        value = generation.get(field) if field in generation else extra.get(field)
        if field == "model_hash" and value is None:
            hashes = generation.get("hashes")
            if isinstance(hashes, Mapping):
                value = hashes.get("model")
        add(label, value)
    for key, value in extra.items():
        if isinstance(key, str) and key not in _RESERVED:
            add(key, value)
    hashes = generation.get("hashes")
    if isinstance(hashes, Mapping):
        add("Lora hashes", _extra_hashes_line(hashes, "lora:"))
        add("TI hashes", _extra_hashes_line(hashes, "embed:"))
    return pairs


def to_infotext(record_or_generation: Optional[Mapping[str, Any]]) -> str:
    """A1111 infotext for a record from ``metadata.extract_image_metadata``, its ``generation``,
    or a raw Civitai ``meta`` dict.

    Returns ``""`` when there is no generation data. Extra keys whose values are plain text or
    numbers go on the parameters line after the standard ones; nested values (resources, ComfyUI
    graphs) are left to the JSON sidecar.
    """
    if not record_or_generation:
        return ""
    generation = _generation_of(record_or_generation)
    if not generation:
        return ""
    generation = _with_record_size(generation, record_or_generation)
    if record_or_generation.get("resources"):  # LoRA tags the prompt lacks, the user's names
        generation = localized_generation(generation, record_or_generation["resources"])
    prompt = generation.get("prompt")
    negative = generation.get("negative_prompt")
    prompt_text = "" if prompt is None else str(prompt)
    # WebUI leaves the negative line out when there is no negative prompt.
    negative_text = f"\n{NEGATIVE_PREFIX} {negative}" if negative not in (None, "") else ""
    pairs = parameter_pairs(generation)
    params = ", ".join(f"{label}: {quote(text)}" for label, text in pairs)
    text = f"{prompt_text}{negative_text}"
    if len(pairs) < MIN_PARAMETERS:
        # WebUI reads a last line with fewer than 3 pairs as prompt text, so a short parameters
        # line would end up in the prompt ("Seed: 5"): leave it out (the values stay in the JSON
        # and the txt's facts)... unless the text's own last line has 3+ "key: value" look-alikes
        # ("(masterpiece:1.2), (best quality:1.1), ..."), which WebUI would then take for the
        # parameters. Ending with our short line keeps the prompt whole.
        last_line = text.strip().rsplit("\n", 1)[-1]
        if not pairs or len(PARAM_RE.findall(last_line)) < MIN_PARAMETERS:
            log.debug("infotext: only %d parameter(s); parameters line left out", len(pairs))
            params = ""
    return f"{text}\n{params}".strip()


def _with_record_size(
    generation: Mapping[str, Any], record_or_generation: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``generation`` with ``size`` from the record's width and height when it has none: WebUI
    always writes ``Size``, and the image's own dimensions are exactly that."""
    width, height = record_or_generation.get("width"), record_or_generation.get("height")
    if generation.get("size") or not isinstance(width, int) or not isinstance(height, int):
        return generation
    if isinstance(width, bool) or isinstance(height, bool) or width <= 0 or height <= 0:
        return generation
    return {**generation, "size": f"{width}x{height}"}


def parse_infotext(text: str) -> Dict[str, Any]:
    """Read infotext the way WebUI's ``parse_generation_parameters`` does.

    Returns ``{"prompt", "negative_prompt", "params", "width", "height"}``: ``params`` maps each
    label to its text (JSON-quoted values unquoted), ``width``/``height`` come from ``Size: WxH``
    (None when absent). WebUI's paste defaults (``Clip skip: 1`` and friends) are not invented.
    """
    result: Dict[str, Any] = {
        "prompt": "",
        "negative_prompt": "",
        "params": {},
        "width": None,
        "height": None,
    }
    if not text:
        return result
    *lines, last_line = text.strip().split("\n")
    if len(PARAM_RE.findall(last_line)) < MIN_PARAMETERS:
        lines.append(last_line)
        last_line = ""

    prompt = ""
    negative = ""
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result["prompt"] = prompt
    result["negative_prompt"] = negative

    params: Dict[str, str] = {}
    for key, value in PARAM_RE.findall(last_line):
        if value[:1] == '"' and value[-1:] == '"':
            value = unquote(value)
        params[key] = value
    result["params"] = params
    size = SIZE_RE.match(params.get("Size", ""))
    if size:
        result["width"], result["height"] = int(size.group(1)), int(size.group(2))
    return result
