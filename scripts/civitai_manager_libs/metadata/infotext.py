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

from .generation import (
    extract_generation,
    find_hash,
    to_number,
    webui_sampler,
    webui_schedule_type,
)
from .resources_text import localized_generation

log = logging.getLogger(__name__)

#: WebUI's own parameter regex (modules/infotext_utils.py ``re_param_code``). Kept for reference
#: and tests: ``findall`` with it is quadratic on a long line without pairs (every start position
#: rescans the word run), so this module reads lines with :func:`param_pairs` instead.
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# The same match in two linear steps. A key can only begin at the first word character of a
# maximal run of ``[\w \-/]`` (a match ends after a comma or at the end, and a comma ends a run),
# and it runs to the end of that run, which must be followed by ``:``. The lookbehind rejects every
# other start position in O(1); possessive quantifiers never backtrack into a run.
_KEY_START_RE = re.compile(r'(?<![\w \-/])[ \-/]*+(\w[\w \-/]++):')
# The value part of PARAM_RE, matched right after the key's colon. Quoted scans end at the first
# unescaped quote, which is never past the next quoted value's opening quote: linear overall.
_VALUE_RE = re.compile(r'\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
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
    ("schedule_type", "Schedule type"),
    ("cfg_scale", "CFG scale"),
    ("seed", "Seed"),
    ("size", "Size"),
    ("model_hash", "Model hash"),
    ("model", "Model"),
    ("vae_hash", "VAE hash"),
    ("VAE", "VAE"),
    ("Denoising strength", "Denoising strength"),
    ("clip_skip", "Clip skip"),
)
#: Labels produced from the normalized fields; extra keys with these names are not repeated.
_RESERVED = {label for _, label in _LEADING} | {
    "Prompt",
    "Negative prompt",
    "Lora hashes",
    "TI hashes",
}
#: Keys Civitai's parsers and generator add that are no A1111 parameter (compared in lower case).
#: They stay in the JSON record, never on the parameters line. Keys that do not start with a
#: capital letter (``cfgScale``, ``comfy``, ``denoise``...) are no WebUI label either.
NON_A1111_KEYS = frozenset(
    {
        "created date",
        "workflow",
        "engine",
        "denoise",
        "scheduler",
        "extra",
        "upscalers",
        "vaes",
        "width",
        "height",
        "comfy",
        "resources",
        "civitairesources",
        "additionalresources",
        "hashes",
        "models",
        "type",
        "process",
        "nsfw",
        "draft",
        "quantity",
        "aspectratio",
        "basemodel",
    }
)
#: Pairs WebUI ignores on paste, written only to make a short parameters line count as one
#: (WebUI needs three pairs): record field -> label.
PADDING = (("id", "Civitai image"), ("post_id", "Civitai post"), ("version_id", "Civitai version"))


def param_pairs(line: str, limit: Optional[int] = None) -> List[Tuple[str, str]]:
    """``PARAM_RE.findall(line)`` in linear time: the ``(key, raw value)`` pairs WebUI reads.

    ``limit`` stops after that many pairs (enough to apply WebUI's "at least three" rule).
    """
    pairs: List[Tuple[str, str]] = []
    pos = 0
    while limit is None or len(pairs) < limit:
        key = _KEY_START_RE.search(line, pos)
        if key is None:
            break
        value = _VALUE_RE.match(line, key.end())
        assert value is not None  # the [^,]* branch always matches
        pairs.append((key.group(1), value.group(1)))
        pos = value.end()
    return pairs


def is_parameters_line(line: str) -> bool:
    """WebUI's rule: a last line is the parameters line when it holds at least three pairs."""
    return len(param_pairs(line, MIN_PARAMETERS)) >= MIN_PARAMETERS


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


def _extra_of(generation: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = generation.get("extra")
    return extra if isinstance(extra, Mapping) else {}


def is_a1111_key(key: Any) -> bool:
    """Whether an extra ``meta`` key is a WebUI infotext label that belongs on the parameters
    line (``Hires upscale``, ``ENSD``, ``ADetailer model``), not a Civitai or ComfyUI key."""
    return (
        isinstance(key, str)
        and key[:1].isascii()
        and key[:1].isupper()
        and key.lower() not in NON_A1111_KEYS
        and key not in _RESERVED
        and not any(key == label for _, label in PADDING)
    )


def hashes_text(hashes: Mapping[str, Any], prefix: str) -> Optional[str]:
    """WebUI's ``Lora hashes`` / ``TI hashes`` value from ``hashes`` keys ``<prefix><name>``
    (the prefix in any case: ``lora:``, ``LORA:``, ``embed:``)."""
    pairs = [
        f"{key[len(prefix):]}: {value}"
        for key, value in hashes.items()
        if isinstance(key, str)
        and key[: len(prefix)].lower() == prefix
        and isinstance(value, str)
        and value
    ]
    return ", ".join(pairs) if pairs else None


def parameter_pairs(generation: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The ``(label, text)`` pairs of the parameters line, in WebUI's order."""
    extra = _extra_of(generation)
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

    hashes = generation.get("hashes")
    hashes = hashes if isinstance(hashes, Mapping) else {}
    for field, label in _LEADING:
        # Records written before a field existed kept its value in ``extra`` under its label.
        value = generation.get(field)
        if value is None:
            value = extra.get(label)
        if field == "sampler":
            value = webui_sampler(value)
        elif field == "schedule_type" and value is None:
            value = webui_schedule_type(extra.get("scheduler"))
        elif field == "model_hash" and value is None:
            value = find_hash(hashes, "model")
        elif field == "vae_hash" and value is None:
            value = find_hash(hashes, "vae")
        add(label, value)
    for key, value in extra.items():
        if is_a1111_key(key):
            add(key, value)
    add("Lora hashes", hashes_text(hashes, "lora:") or extra.get("Lora hashes"))
    add("TI hashes", hashes_text(hashes, "embed:") or extra.get("TI hashes"))
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
    text = f"{prompt_text}{negative_text}"
    looks_like_parameters = is_parameters_line(text.strip().rsplit("\n", 1)[-1])
    if len(pairs) < MIN_PARAMETERS and (pairs or looks_like_parameters):
        # WebUI reads a last line with fewer than 3 pairs as prompt text: it would paste no Seed
        # and no Size. Pad the line with pairs WebUI ignores (the Civitai image id...). That also
        # keeps a prompt whose own last line looks like parameters from being read as them.
        pairs += _padding(record_or_generation, MIN_PARAMETERS - len(pairs), pairs)
    params = ", ".join(f"{label}: {quote(text)}" for label, text in pairs)
    if len(pairs) < MIN_PARAMETERS and not looks_like_parameters:
        # Still too short (nothing to pad with): as a last line it would become prompt text
        # ("a fox\nSeed: 5"). Leave it out; the values stay in the JSON and the txt's facts.
        # With a look-alike last line, ending with the short line keeps the prompt whole.
        log.debug("infotext: only %d parameter(s); parameters line left out", len(pairs))
        params = ""
    return f"{text}\n{params}".strip()


def _padding(
    record: Mapping[str, Any], wanted: int, pairs: List[Tuple[str, str]]
) -> List[Tuple[str, str]]:
    """Up to ``wanted`` pairs WebUI ignores when pasting, from the record's Civitai ids."""
    taken = {label for label, _ in pairs}
    out: List[Tuple[str, str]] = []
    for field, label in PADDING:
        value = record.get(field)
        if len(out) < wanted and label not in taken and isinstance(value, int):
            out.append((label, str(value)))
    return out


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
    # The file of a hires-fixed generation is ``Hires upscale`` times the generation size, and
    # WebUI applies the upscale again on paste: write the size before the upscale.
    extra = _extra_of(generation)
    upscale = to_number(extra.get("Hires upscale"))
    if (
        isinstance(upscale, (int, float))
        and not isinstance(upscale, bool)
        and upscale > 1
        and not extra.get("Hires resize-1")
    ):
        width, height = max(1, round(width / upscale)), max(1, round(height / upscale))
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
    if not is_parameters_line(last_line):
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
    for key, value in param_pairs(last_line):
        if value[:1] == '"' and value[-1:] == '"':
            value = unquote(value)
        params[key] = value
    result["params"] = params
    size = SIZE_RE.match(params.get("Size", ""))
    if size:
        result["width"], result["height"] = int(size.group(1)), int(size.group(2))
    return result
