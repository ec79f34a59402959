"""A1111 infotext: exact layout, WebUI's reader, and hypothesis round trips."""

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.civitai_manager_libs.metadata.generation import webui_sampler
from scripts.civitai_manager_libs.metadata.infotext import (
    NON_A1111_KEYS,
    parse_infotext,
    quote,
    to_infotext,
)

# The parameters regex exactly as written in /work/shared/civitai-api-notes.md (WebUI's re_param).
NOTES_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def webui_unquote(text):
    """WebUI's infotext_utils.unquote."""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def webui_prompt(text):
    """What WebUI's parser gives back for a prompt: lines stripped, leading blank lines dropped."""
    out = ""
    for line in text.split("\n"):
        line = line.strip()
        out += ("" if out == "" else "\n") + line
    return out


def test_exact_a1111_layout():
    generation = {
        "prompt": "masterpiece, 1girl, <lora:add_detail:0.6>",
        "negative_prompt": "lowres, bad hands",
        "steps": 28,
        "sampler": "DPM++ 2M Karras",
        "cfg_scale": 7,
        "seed": 3141592653,
        "size": "512x768",
        "clip_skip": 2,
        "model": "anything-v5",
        "model_hash": "7f96a1a9ca",
        "loras": [{"name": "add_detail", "weight": 0.6}],
        "resources": [],
        "hashes": {"model": "7f96a1a9ca", "lora:add_detail": "7c6bad76eb54"},
        "extra": {"Denoising strength": 0.4, "Hires upscale": 2, "Hires upscaler": "Latent"},
    }
    assert to_infotext(generation) == (
        "masterpiece, 1girl, <lora:add_detail:0.6>\n"
        "Negative prompt: lowres, bad hands\n"
        "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3141592653, Size: 512x768, "
        "Model hash: 7f96a1a9ca, Model: anything-v5, Denoising strength: 0.4, Clip skip: 2, "
        'Hires upscale: 2, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54"'
    )


def test_record_with_generation_and_no_negative_prompt():
    record = {
        "id": 5,
        "generation": {
            "prompt": "a cat",
            "negative_prompt": "",
            "steps": 20,
            "seed": 1,
            "sampler": "Euler a",
            "cfg_scale": 7.5,
            "extra": {},
        },
    }
    assert to_infotext(record) == "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1"
    assert to_infotext({"id": 5, "generation": None}) == ""
    assert to_infotext(None) == ""


def test_values_are_quoted_like_webui_and_nested_values_left_out():
    generation = {
        "prompt": "p",
        "steps": 20,
        "sampler": "Euler",
        "seed": 1,
        "model": "meina: 3mix, v2",
        "extra": {"Comment": 'say "hi"\nthen go', "comfy": {"nodes": []}, "bad.key": 1},
    }
    line = to_infotext(generation).split("\n")[-1]
    assert 'Model: "meina: 3mix, v2"' in line
    assert 'Comment: "say \\"hi\\"\\nthen go"' in line
    assert "comfy" not in line and "bad.key" not in line
    assert quote("plain text") == "plain text"
    assert quote("a, b") == '"a, b"'
    assert quote("日本語: テキスト") == '"日本語: テキスト"'  # ensure_ascii=False, like WebUI


def test_parse_webui_sample():
    text = (
        "girl with an artist's beret, determined, blue eyes\n"
        "Negative prompt: ugly, fat, (((deformed))), [blurry]\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x768, "
        'Model hash: 45dee52b, Lora hashes: "a: 1, b: 2"'
    )
    parsed = parse_infotext(text)
    assert parsed["prompt"] == "girl with an artist's beret, determined, blue eyes"
    assert parsed["negative_prompt"] == "ugly, fat, (((deformed))), [blurry]"
    assert parsed["params"] == {
        "Steps": "20",
        "Sampler": "Euler a",
        "CFG scale": "7",
        "Seed": "965400086",
        "Size": "512x768",
        "Model hash": "45dee52b",
        "Lora hashes": "a: 1, b: 2",
    }
    assert (parsed["width"], parsed["height"]) == (512, 768)


def test_last_line_with_fewer_than_three_pairs_is_prompt_text():
    parsed = parse_infotext("a photo\nSteps: 20, Seed: 1")
    assert parsed["prompt"] == "a photo\nSteps: 20, Seed: 1"
    assert parsed["params"] == {}
    assert parse_infotext("")["prompt"] == ""


# ------------------------------------------------------------------------------ property tests

_NEG = "Negative prompt:"
_free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),
    max_size=60,
)
# A1111's reader cannot tell a prompt line that starts with "Negative prompt:" from the real one.
_prompt = _free_text.filter(lambda s: not any(x.strip().startswith(_NEG) for x in s.split("\n")))
_tricky = st.sampled_from(
    [
        'a, b',
        'k: v',
        'line1\nline2',
        '"quoted"',
        'say "x"',
        ' padded ',
        '日本語, テキスト',
        '\\',
        '"',
    ]
)
_value_text = st.one_of(_tricky, _free_text)
_number = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
)
# Extra keys as WebUI writes them (a capital first; Civitai's camelCase keys stay off the line).
_key = st.from_regex(r"\A[A-Z][\w \-/]{0,14}[\w\-/]\Z", fullmatch=True).filter(
    lambda k: k.lower() not in NON_A1111_KEYS
    and k not in {"Civitai image", "Civitai post", "Civitai version"}
    and k
    not in {
        "Steps",
        "Sampler",
        "Schedule type",
        "CFG scale",
        "Seed",
        "Size",
        "Model hash",
        "Model",
        "VAE hash",
        "VAE",
        "Denoising strength",
        "Clip skip",
        "Prompt",
        "Negative prompt",
        "Lora hashes",
        "TI hashes",
    }
)


@st.composite
def generations(draw):
    return {
        "prompt": draw(_prompt),
        "negative_prompt": draw(_prompt),
        "steps": draw(st.integers(min_value=1, max_value=150)),
        "sampler": draw(_value_text),
        "cfg_scale": draw(_number),
        "seed": draw(st.integers(min_value=-1, max_value=2**64)),
        "size": draw(st.one_of(st.none(), st.just("512x768"), _value_text)),
        "clip_skip": draw(st.one_of(st.none(), st.integers(1, 12))),
        "model": draw(st.one_of(st.none(), _value_text)),
        "model_hash": draw(st.one_of(st.none(), st.text("0123456789abcdef", min_size=10))),
        "hashes": draw(
            st.dictionaries(
                st.builds(lambda n: "lora:" + n, st.from_regex(r"\A[\w\-. ]{1,12}\Z")),
                st.text("0123456789abcdef", min_size=1, max_size=12),
                max_size=3,
            )
        ),
        "extra": draw(st.dictionaries(_key, st.one_of(_value_text, _number), max_size=4)),
    }


def _expected_params(gen):
    expected = {
        "Steps": str(gen["steps"]),
        "Sampler": webui_sampler(gen["sampler"]),
        "CFG scale": str(gen["cfg_scale"]),
        "Seed": str(gen["seed"]),
    }
    for field, label in (
        ("size", "Size"),
        ("model_hash", "Model hash"),
        ("model", "Model"),
        ("clip_skip", "Clip skip"),
    ):
        if gen[field] is not None:
            expected[label] = str(gen[field])
    for key, value in gen["extra"].items():
        expected[key] = str(value)
    if gen["hashes"]:
        expected["Lora hashes"] = ", ".join(f"{k[5:]}: {v}" for k, v in gen["hashes"].items())
    return expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generations())
def test_round_trip_keeps_prompts_and_every_parameter(gen):
    parsed = parse_infotext(to_infotext(gen))
    assert parsed["prompt"] == webui_prompt(gen["prompt"])
    assert parsed["negative_prompt"] == webui_prompt(gen["negative_prompt"])
    assert parsed["params"] == _expected_params(gen)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generations())
def test_parameters_line_reads_with_the_notes_regex(gen):
    last_line = to_infotext(gen).strip().split("\n")[-1]
    pairs = NOTES_PARAM_RE.findall(last_line)
    assert len(pairs) >= 3
    assert {k: webui_unquote(v) for k, v in pairs} == _expected_params(gen)
    assert len(pairs) == len(_expected_params(gen))  # no key written twice, none split in two


def test_raw_civitai_meta_is_normalized_first():
    from scripts.civitai_manager_libs.metadata.generation import extract_generation

    meta = {
        "prompt": "p",
        "negativePrompt": "n",
        "cfgScale": "7",
        "steps": 20,
        "seed": 5,
        "clipSkip": 2,
        "sampler": "Euler",
        "hashes": {"lora:x": "ab"},
    }
    text = to_infotext(meta)
    assert text == to_infotext(extract_generation(meta))
    assert text.endswith(
        'Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Clip skip: 2, ' 'Lora hashes: "x: ab"'
    )


def test_too_few_parameters_are_not_written_where_webui_would_read_them_as_prompt():
    text = to_infotext({"prompt": "a fox", "seed": 5, "extra": {}})
    assert text == "a fox"
    assert parse_infotext(text)["prompt"] == "a fox"


def test_a_prompt_whose_last_line_looks_like_parameters_is_never_read_as_them():
    # Few parameters: WebUI would take a prompt line full of "(word:1.2)" weights for the
    # parameters line. The infotext must keep the whole prompt as prompt.
    prompt = "(masterpiece:1.2), (best quality:1.1), 1girl, (detailed eyes:1.3)"
    parsed = parse_infotext(to_infotext({"prompt": prompt, "seed": 5}))
    assert parsed["prompt"].startswith(prompt)
    assert not any("masterpiece" in key for key in parsed["params"])
    negative = "ugly, hands: bad, text: yes, blur: 1"
    parsed = parse_infotext(
        to_infotext({"prompt": "a cat", "negative_prompt": negative, "seed": 5})
    )
    assert parsed["negative_prompt"].startswith(negative)
    assert "hands" not in parsed["params"]


def test_a_record_without_size_takes_it_from_the_image_dimensions():
    record = {
        "width": 512,
        "height": 768,
        "generation": {"prompt": "a cat", "seed": 5, "steps": 20},
    }
    parsed = parse_infotext(to_infotext(record))
    assert parsed["prompt"] == "a cat"
    assert parsed["params"]["Size"] == "512x768" and parsed["params"]["Seed"] == "5"
    assert (parsed["width"], parsed["height"]) == (512, 768)


# ------------------------------------------------------------------ linear time (issue 10, item 1)

_TIMING_SNIPPET = r'''
import sys, time
from scripts.civitai_manager_libs.metadata.infotext import parse_infotext, to_infotext
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata, format_txt

def run(prompt, meta_extra):
    start = time.perf_counter()
    record = extract_image_metadata({"id": 7, "width": 64, "height": 64,
                                     "meta": {"prompt": prompt, **meta_extra}})
    text = to_infotext(record)
    format_txt(record)
    parsed = parse_infotext(text)
    assert parsed["prompt"].startswith(prompt[:1000])
    return time.perf_counter() - start

kind = sys.argv[1]
for size in [int(s) for s in sys.argv[2:]]:
    if kind == "words":
        prompt = "p" * size
    elif kind == "weights":
        prompt = "(masterpiece:1.2), " * (size // 19)
    else:
        prompt = 'a: "' * (size // 4)
    print(size, min(run(prompt, {"seed": 5}) for _ in range(3)), flush=True)
'''


def _timed(kind, *sizes, timeout=60):
    """Run the write + parse of prompts of ``sizes`` characters in a child process (so quadratic
    code fails by timing out instead of hanging the suite); returns ``{size: seconds}``."""
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = [sys.executable, "-c", _TIMING_SNIPPET, kind, *map(str, sizes)]
    try:
        done = subprocess.run(
            argv, cwd=repo, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"infotext of {sizes} characters took over {timeout} s") from None
    return {int(a): float(b) for a, b in (line.split() for line in done.stdout.split("\n") if line)}


def test_a_one_megabyte_prompt_is_written_and_parsed_well_under_a_second():
    for kind in ("words", "weights", "quotes"):
        seconds = _timed(kind, 1_000_000, timeout=20)[1_000_000]
        assert seconds < 2.0, (kind, seconds)


def test_infotext_time_grows_linearly_with_prompt_length():
    # 200 KB prompts with fewer than three parameters (the case that froze runs), and the
    # ratio between 100 KB and 1 MB: linear is ~10x, quadratic ~100x.
    times = _timed("words", 200_000, 100_000, 1_000_000, timeout=30)
    assert times[200_000] < 1.0
    ratio = times[1_000_000] / max(times[100_000], 0.005)
    assert ratio < 40, times


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='ab_1 :,"\\-/\t\né.', max_size=40))
def test_linear_reader_finds_exactly_what_webuis_regex_finds(line):
    from scripts.civitai_manager_libs.metadata.infotext import param_pairs

    assert param_pairs(line) == NOTES_PARAM_RE.findall(line)
