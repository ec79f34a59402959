"""Issue 11 items 1-3: the infotext WebUI reads back is the generation Civitai describes.

Every check reads the written text with WebUI's own rules (``tests/webui_rules.py``), not with the
project's parser.
"""

from __future__ import annotations

import json

import pytest

from scripts.civitai_manager_libs.metadata.infotext import to_infotext
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata

from webui_rules import read


def record_for(meta, width=512, height=768, image_id=4242):
    item = {"id": image_id, "postId": 77, "width": width, "height": height, "meta": meta}
    return extract_image_metadata(item, {"version_id": 11})


def pasted(meta, **kw):
    return read(to_infotext(record_for(meta, **kw)))


# ------------------------------------------------------------------------------ item 1


def test_prompt_and_seed_only_reach_webui_with_seed_and_size():
    got = pasted({"prompt": "a fox in snow", "seed": 5})
    assert got["Prompt"] == "a fox in snow"
    assert (got["Seed"], got["Size"]) == ("5", "512x768")
    assert "Civitai image" in got  # the harmless filler WebUI ignores on paste


@pytest.mark.parametrize(
    "meta",
    [
        {"prompt": "a cat", "seed": 9, "steps": 20},
        {"prompt": "a cat", "sampler": "Euler a"},
        {"prompt": "a cat", "negativePrompt": "blur", "cfgScale": 7},
    ],
)
def test_fewer_than_three_parameters_still_form_a_parameters_line(meta):
    got = pasted(meta)
    assert got["Prompt"] == "a cat" and "Size" in got
    for key, label in (("seed", "Seed"), ("steps", "Steps"), ("sampler", "Sampler")):
        if key in meta:
            assert got[label] == str(meta[key])


def test_a_prompt_that_looks_like_parameters_is_never_read_as_them():
    prompt = "(masterpiece:1.2), (best quality:1.1), 1girl, (detailed eyes:1.3)"
    got = pasted({"prompt": prompt, "seed": 3})
    assert got["Prompt"] == prompt and got["Seed"] == "3"
    assert not any("masterpiece" in key for key in got)
    # Without any parameter at all the filler alone keeps the prompt whole.
    got = pasted({"prompt": prompt})
    assert got["Prompt"] == prompt


def test_size_of_a_hires_fixed_file_is_the_generation_size():
    got = pasted({"prompt": "p", "seed": 1, "Hires upscale": "2"}, width=1024, height=1536)
    assert got["Size"] == "512x768"


# ------------------------------------------------------------------------------ item 2

NOTES_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_sde_gpu": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "lcm": "LCM",
    "restart": "Restart",
}
NOTES_SCHEDULERS = {
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "normal": "Normal",
    "ddim_uniform": "DDIM",
    "beta": "Beta",
}


@pytest.mark.parametrize("comfy, webui", sorted(NOTES_SAMPLERS.items()))
def test_comfyui_sampler_names_become_webui_names(comfy, webui):
    meta = {"prompt": "p", "seed": 1, "steps": 20, "cfgScale": 7, "sampler": comfy}
    assert pasted(meta)["Sampler"] == webui
    record = record_for(meta)
    assert record["generation"]["sampler"] == webui
    assert record["generation"]["extra"]["sampler"] == comfy  # the original stays in the record


@pytest.mark.parametrize("comfy, webui", sorted(NOTES_SCHEDULERS.items()))
def test_comfyui_schedulers_become_schedule_type(comfy, webui):
    meta = {"prompt": "p", "seed": 1, "steps": 20, "sampler": "dpmpp_2m", "scheduler": comfy}
    got = pasted(meta)
    assert (got["Sampler"], got["Schedule type"]) == ("DPM++ 2M", webui)
    assert "scheduler" not in got
    record = record_for(meta)
    assert record["generation"]["schedule_type"] == webui
    assert record["generation"]["extra"]["scheduler"] == comfy


def test_webui_names_and_old_combined_names_are_kept():
    assert pasted({"prompt": "p", "seed": 1, "sampler": "DPM++ 2M Karras"})["Sampler"] == (
        "DPM++ 2M Karras"
    )
    got = pasted({"prompt": "p", "seed": 1, "sampler": "Euler a", "Schedule type": "Automatic"})
    assert (got["Sampler"], got["Schedule type"]) == ("Euler a", "Automatic")


# ------------------------------------------------------------------------------ item 3


def test_width_and_height_keys_give_the_generation_size():
    meta = {"prompt": "p", "seed": 1, "steps": 30, "width": 512, "height": 768}
    meta["Hires upscale"] = 2
    got = pasted(meta, width=1024, height=1536)
    assert got["Size"] == "512x768"
    assert "width" not in got and "height" not in got


def test_ti_hashes_object_vae_hash_and_hash_keys_in_any_case_reach_the_infotext():
    meta = {
        "prompt": "p",
        "seed": 1,
        "steps": 30,
        "TI hashes": {"easynegative": "c74b4e810b03", "badhandv4": "5e40d722fc3d"},
        "hashes": {
            "model": "1449e5b0b9",
            "vae": "235745af8d",
            "LORA:pony/detail": "7c6bad76eb54",
            "lora:film": "aa11bb22cc33",
            "embed:fastneg": "a1b2c3d4e5f6",
        },
    }
    got = pasted(meta)
    assert got["Model hash"] == "1449e5b0b9"
    assert got["VAE hash"] == "235745af8d"
    assert got["Lora hashes"] == "pony/detail: 7c6bad76eb54, film: aa11bb22cc33"
    ti = dict(part.split(": ") for part in got["TI hashes"].split(", "))
    assert ti == {
        "fastneg": "a1b2c3d4e5f6",
        "easynegative": "c74b4e810b03",
        "badhandv4": "5e40d722fc3d",
    }
    generation = record_for(meta)["generation"]
    assert generation["vae_hash"] == "235745af8d"
    assert generation["hashes"]["embed:easynegative"] == "c74b4e810b03"


def test_a_comfy_string_that_is_not_json_never_reaches_the_parameters_line():
    comfy = (
        '{"prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}, '
        '"workflow": undefined}'
    )
    meta = {"prompt": "p", "seed": 1, "steps": 20, "cfgScale": 5, "comfy": comfy}
    text = to_infotext(record_for(meta))
    assert "KSampler" not in text and "workflow" not in text
    assert len(text.split("\n")[-1]) < 200
    extra = record_for(meta)["generation"]["extra"]
    assert extra["comfy"] == {
        "prompt": {"3": {"class_type": "KSampler", "inputs": {"seed": 1}}},
        "workflow": None,
    }
    broken = '{"prompt": {"3": '
    assert record_for({**meta, "comfy": broken})["generation"]["extra"]["comfy"] == broken
    assert broken not in to_infotext(record_for({**meta, "comfy": broken}))


def test_keys_that_are_no_a1111_parameter_stay_in_the_record_only():
    odd = {
        "width": 832,
        "height": 1216,
        "Created Date": "2026-03-01T10:00:00.000Z",
        "engine": "comfy",
        "workflow": "txt2img",
        "denoise": 1,
        "scheduler": "karras",
        "extra": {"remixOfId": 5},
        "upscalers": [],
        "vaes": ["sdxl_vae"],
        "quantity": 4,
        "baseModel": "SDXL",
    }
    meta = {"prompt": "p", "seed": 1, "steps": 20, "sampler": "euler", **odd}
    got = pasted(meta)
    for key in odd:
        assert key not in got
    assert got["Schedule type"] == "Karras" and got["Size"] == "832x1216"
    extra = record_for(meta)["generation"]["extra"]
    for key, value in odd.items():
        assert extra[key] == value
    assert json.dumps(extra)
