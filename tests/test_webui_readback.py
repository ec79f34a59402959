"""The acceptance of issue 11: every picture the fake serves, downloaded by the CLI with
``--metadata json,exif``, pastes into WebUI as the generation its JSON record describes.

The infotext is read from the file the way WebUI's ``read_info_from_image`` does (Pillow's PNG
``parameters`` text, the EXIF UserComment via piexif) and parsed with WebUI's rules as the notes
restate them (``tests/webui_rules.py``), independently of the project's own reader.
"""

from __future__ import annotations

import io
import json
import os
import re

import piexif
import piexif.helper
from PIL import Image
from webui_rules import read

from scripts.civitai_manager_libs.cli import command as cli

FIELDS = (
    "Prompt",
    "Negative prompt",
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Seed",
    "Size",
    "Model",
    "Model hash",
    "Clip skip",
    "VAE hash",
    "Lora hashes",
    "TI hashes",
)


# WebUI 1.10's sampler and scheduler labels (an unknown sampler silently becomes the default).
WEBUI_SAMPLERS = {
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE",
    "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart",
    "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
}  # fmt: skip
WEBUI_SCHEDULES = {
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform",
    "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
}  # fmt: skip


def webui_knows_sampler(name):
    """WebUI also reads old combined names (``DPM++ 2M Karras``): it strips a schedule suffix."""
    for schedule in sorted(WEBUI_SCHEDULES, key=len, reverse=True):
        if name.endswith(" " + schedule):
            name = name[: -len(schedule) - 1]
            break
    return name in WEBUI_SAMPLERS


def webui_read_info(path):
    """WebUI's read_info_from_image: PNG ``parameters``, overridden by an EXIF UserComment."""
    with Image.open(path) as image:
        info = dict(image.info or {})
    text = info.get("parameters")
    if "exif" in info:
        try:
            exif = piexif.load(info["exif"])
        except OSError:  # as WebUI: bytes piexif cannot read are taken for a missing file
            exif = {}
        comment = (exif or {}).get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
        try:
            decoded = piexif.helper.UserComment.load(comment)
        except ValueError:
            decoded = comment.decode("utf8", errors="ignore")
        if decoded:
            text = decoded
    return text


def _prompt(text):
    return "\n".join(line.strip() for line in text.split("\n")).strip("\n")


def _hashes(hashes, prefix):
    pairs = [
        f"{k[len(prefix):]}: {v}"
        for k, v in (hashes or {}).items()
        if k[: len(prefix)].lower() == prefix and isinstance(v, str) and v
    ]
    return ", ".join(pairs) or None


def expected_from_record(record):
    """The values WebUI must paste, from the JSON record (None: the record has no value)."""
    gen = record.get("generation") or {}

    def text(value):
        return None if value in (None, "") else str(value)

    return {
        "Prompt": _prompt(gen["prompt"]) if gen.get("prompt") else None,
        "Negative prompt": _prompt(gen["negative_prompt"]) if gen.get("negative_prompt") else None,
        "Steps": text(gen.get("steps")),
        "Sampler": text(gen.get("sampler")),
        "Schedule type": text(gen.get("schedule_type")),
        "CFG scale": text(gen.get("cfg_scale")),
        "Seed": text(gen.get("seed")),
        "Size": text(gen.get("size")),
        "Model": text(gen.get("model")),
        "Model hash": text(gen.get("model_hash")),
        "Clip skip": text(gen.get("clip_skip")),
        "VAE hash": text(gen.get("vae_hash")),
        "Lora hashes": _hashes(gen.get("hashes"), "lora:"),
        "TI hashes": _hashes(gen.get("hashes"), "embed:"),
    }


_TAG = re.compile(r"<lora:([^:<>]+):([^:<>]+)>", re.IGNORECASE)


def _without_added_lora_tags(got, want, record):
    """``got`` without the ``<lora:NAME:W>`` tags the writer appends (issue 13) when the record
    lists a LoRA resource the prompt lacks; returned unchanged when anything else differs: an
    added tag names a LoRA not in the record's resources, is added twice, or names one the prompt
    already has."""
    if not isinstance(got, str) or not got.startswith(want):
        return got
    rest = got[len(want) :]
    tags = _TAG.findall(rest)
    if not tags or re.sub(r"(, )?<lora:[^:<>]+:[^:<>]+>", "", rest) != "":
        return got
    loras = [r for r in record.get("resources") or [] if r.get("type") == "lora"]
    names = {
        str(n).lower()
        for r in loras
        for n in (r.get("name"), r.get("file_name"), os.path.splitext(r.get("file_name") or "")[0])
        if n
    }
    in_prompt = {m[0].strip().lower() for m in _TAG.findall(want)}
    added = [name.strip().lower() for name, _w in tags]
    if len(set(added)) != len(added) or not set(added) <= names or set(added) & in_prompt:
        return got
    return want


def readback(fake, output):
    """Download every model of ``fake`` and compare; returns (pictures, compared, mismatches)."""
    for model in fake.dataset.models:
        argv = ["download", "model", str(model.id), "--base-url", fake.base_url, "-q"]
        argv += ["--output", str(output), "--nsfw", "all", "--metadata", "json,exif"]
        assert cli.main(argv, out=io.StringIO()) == 0
    pictures = compared = 0
    mismatches = []
    for folder, dirs, names in os.walk(output):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() not in (".png", ".jpeg", ".jpg", ".webp"):
                continue
            pictures += 1
            with open(os.path.join(folder, stem + ".json"), encoding="utf-8") as handle:
                record = json.load(handle)
            text = webui_read_info(os.path.join(folder, name)) or ""
            pasted = read(text) if text else {}
            if "Sampler" in pasted and not webui_knows_sampler(pasted["Sampler"]):
                mismatches.append((record["id"], "unknown sampler", None, pasted["Sampler"]))
            if pasted.get("Schedule type", "Automatic") not in WEBUI_SCHEDULES:
                mismatches.append((record["id"], "unknown schedule", None, pasted["Schedule type"]))
            for field, want in expected_from_record(record).items():
                if want is None:
                    continue
                compared += 1
                got = pasted.get(field)
                if field == "Prompt" and got != want:
                    got = _without_added_lora_tags(got, want, record)
                if got != want:
                    mismatches.append((record["id"], field, want, got))
    return pictures, compared, mismatches


def test_every_served_picture_pastes_into_webui_as_its_json_record(fake_civitai, tmp_path):
    pictures, compared, mismatches = readback(fake_civitai, tmp_path / "out")
    served = [
        i
        for i in fake_civitai.dataset.images
        if i.media != "mp4" and i.nsfw_level != "Blocked"  # Blocked: never asked for
    ]
    assert pictures == len(served)
    print(f"read-back: {pictures} pictures, {compared} values compared, {len(mismatches)} differ")
    assert mismatches == [], mismatches[:20]
    assert compared > 2000
