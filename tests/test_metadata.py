"""Record extraction from every meta shape in the notes, and the json/txt/exif files on disk."""

import json
import logging
import os
import re

import piexif
import piexif.helper
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from scripts.civitai_manager_libs.metadata.embed import read_infotext
from scripts.civitai_manager_libs.errors import MetadataError
from scripts.civitai_manager_libs.metadata.infotext import parse_infotext, to_infotext
from scripts.civitai_manager_libs.metadata.resources_text import with_lora_tags
from scripts.civitai_manager_libs.metadata.record import (
    RECORD_KEYS,
    extract_image_metadata,
    generation_from_infotext,
    save_metadata,
    strip_token,
    with_file_generation,
)
from scripts.civitai_manager_libs.records import ImageItem

NOTES_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
SECRET = "c0ffee5ecret0123456789abcdef"
URL = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/0b9a2c4e-uuid/width=832/4242.jpeg"
ORIGINAL = URL.replace("/width=832/", "/original=true/")  # the record's url (issue 24)

A1111_META = {
    "prompt": "masterpiece, 1girl, <lora:add_detail:0.6>, <lora:film:1>",
    "negativePrompt": "lowres, bad hands",
    "seed": 1234567890123,
    "steps": 28,
    "sampler": "DPM++ 2M Karras",
    "cfgScale": 7,
    "clipSkip": 2,
    "Size": "832x1216",
    "Model": "animagineXL",
    "Model hash": "1449e5b0b9",
    "Hires upscale": "1.5",
    "Denoising strength": "0.4",
    "hashes": {"model": "1449e5b0b9", "lora:add_detail": "7c6bad76eb54", "lora:film": "aa11"},
    "resources": [
        {"type": "lora", "name": "add_detail", "weight": 0.6, "hash": "7c6bad76eb54"},
        {"type": "model", "name": "animagineXL", "hash": "1449e5b0b9"},
    ],
    "civitaiResources": [{"type": "checkpoint", "modelVersionId": 11}],
}


def api_item(meta, **overrides):
    item = {
        "id": 4242,
        "url": URL,
        "hash": "UDF~Ee%M_3of~qofofof~qofWBof",
        "width": 832,
        "height": 1216,
        "nsfwLevel": "Soft",
        "nsfw": True,
        "type": "image",
        "createdAt": "2026-01-02T03:04:05.000Z",
        "postId": 99,
        "stats": {"likeCount": 5, "heartCount": "2"},
        "meta": meta,
        "username": "alice",
        "baseModel": "SDXL 1.0",
        "modelVersionIds": [11],
    }
    item.update(overrides)
    return item


def noise(mode="RGB", size=(48, 32)):
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


# ------------------------------------------------------------------------------------ extraction


def test_full_a1111_item():
    record = extract_image_metadata(api_item(A1111_META), {"model_id": 7, "model_name": "Anim"})
    assert list(record) == list(RECORD_KEYS)
    assert record["id"] == 4242 and record["url"] == ORIGINAL
    assert (record["width"], record["height"], record["type"]) == (832, 1216, "image")
    assert record["nsfw_level"] == "Soft" and record["creator"] == "alice"
    assert (record["model_id"], record["model_name"], record["version_id"]) == (7, "Anim", 11)
    assert record["post_id"] == 99 and record["base_model"] == "SDXL 1.0"
    assert record["created_at"] == "2026-01-02T03:04:05.000Z"
    assert record["stats"] == {"likeCount": 5, "heartCount": 2}
    gen = record["generation"]
    assert gen["prompt"] == A1111_META["prompt"]
    assert gen["negative_prompt"] == "lowres, bad hands"
    assert (gen["steps"], gen["sampler"], gen["cfg_scale"]) == (28, "DPM++ 2M Karras", 7)
    assert gen["seed"] == 1234567890123 and gen["clip_skip"] == 2
    assert (gen["size"], gen["model"], gen["model_hash"]) == (
        "832x1216",
        "animagineXL",
        "1449e5b0b9",
    )
    assert gen["loras"] == [
        {"name": "add_detail", "weight": 0.6, "hash": "7c6bad76eb54"},
        {"name": "film", "hash": "aa11", "weight": 1},
    ]
    assert gen["resources"] == A1111_META["resources"]
    assert gen["hashes"] == A1111_META["hashes"]
    assert gen["extra"] == {
        "Hires upscale": "1.5",
        "Denoising strength": "0.4",
        "civitaiResources": [{"type": "checkpoint", "modelVersionId": 11}],
    }
    json.dumps(record, allow_nan=False)


@pytest.mark.parametrize("meta", [None, {}, {"id": 4242, "meta": None}, "hidden", 17])
def test_no_generation_data(meta):
    record = extract_image_metadata(api_item(meta))
    assert record["generation"] is None
    assert record["id"] == 4242


def test_wrapped_meta_is_unwrapped():
    record = extract_image_metadata(api_item({"id": 4242, "meta": {"prompt": "x", "seed": 3}}))
    assert record["generation"]["prompt"] == "x" and record["generation"]["seed"] == 3


def test_numbers_sent_as_strings_become_numbers():
    meta = {"seed": "18446744073709551615", "steps": " 30", "cfgScale": "7.5", "Clip skip": "2"}
    gen = extract_image_metadata(api_item(meta))["generation"]
    assert gen["seed"] == 18446744073709551615 and isinstance(gen["seed"], int)
    assert gen["steps"] == 30 and gen["cfg_scale"] == 7.5 and gen["clip_skip"] == 2
    odd = extract_image_metadata(api_item({"seed": "random", "steps": "1e3", "cfgScale": "nan"}))
    assert odd["generation"]["seed"] == "random"
    assert odd["generation"]["steps"] == 1000.0
    assert odd["generation"]["cfg_scale"] == "nan"


def test_clip_skip_int_and_string_spellings_agree():
    a = extract_image_metadata(api_item({"clipSkip": 2}))["generation"]["clip_skip"]
    b = extract_image_metadata(api_item({"Clip skip": "2"}))["generation"]["clip_skip"]
    assert a == b == 2


def test_model_object_is_stringified_and_kept():
    gen = extract_image_metadata(api_item({"Model": {"meina_belly_7": "3mix"}}))["generation"]
    assert gen["model"] == "meina_belly_7: 3mix"
    assert gen["extra"]["Model"] == {"meina_belly_7": "3mix"}
    named = extract_image_metadata(api_item({"Model": {"name": "dreamshaper", "id": 4}}))
    assert named["generation"]["model"] == "dreamshaper"


def test_comfy_json_string_parsed_or_kept():
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 5}}}
    gen = extract_image_metadata(api_item({"prompt": "p", "comfy": json.dumps(graph)}))
    assert gen["generation"]["extra"]["comfy"] == graph
    broken = extract_image_metadata(api_item({"prompt": "p", "comfy": '{"3": {'}))
    assert broken["generation"]["extra"]["comfy"] == '{"3": {'


def test_unicode_multiline_prompt_survives_into_infotext(tmp_path):
    prompt = '1girl, 桜の木の下で, "smiling"\nBREAK\nscenery: mountains, 夕焼け 🌸'
    meta = {
        "prompt": prompt,
        "negativePrompt": "Москва, ночь",
        "seed": 1,
        "steps": 20,
        "sampler": "Euler a",
    }
    record = extract_image_metadata(api_item(meta))
    assert record["generation"]["prompt"] == prompt
    path = str(tmp_path / "u.png")
    noise().save(path, "PNG")
    save_metadata(path, record, "exif")
    parsed = parse_infotext(read_infotext(path))
    assert parsed["prompt"] == prompt and parsed["negative_prompt"] == "Москва, ночь"


def test_model_version_image_without_id_or_meta_takes_id_from_url():
    item = {"url": URL, "nsfwLevel": 1, "width": 512, "height": 768, "hash": "x", "type": "image"}
    record = extract_image_metadata(item, {"model_id": 1, "version_id": 11, "version_name": "v1"})
    assert record["id"] == 4242
    assert record["generation"] is None
    assert record["nsfw_level"] == "None"
    assert (record["version_id"], record["version_name"]) == (11, "v1")


def test_image_item_input_uses_fields_and_raw():
    raw = api_item({"id": 4242, "meta": A1111_META})
    item = ImageItem(
        id=4242,
        url=URL + "?token=" + SECRET,
        width=832,
        height=1216,
        nsfw_level="Soft",
        creator="alice",
        post_id=99,
        meta=A1111_META,
        model_id=7,
        model_name="Anim",
        version_id=11,
        raw=raw,
    )
    record = extract_image_metadata(item)
    assert record["url"] == ORIGINAL
    assert (record["model_id"], record["model_name"], record["version_id"]) == (7, "Anim", 11)
    assert record["generation"]["seed"] == A1111_META["seed"]
    assert record["stats"] == {"likeCount": 5, "heartCount": 2}  # from raw


def test_missing_fields_give_none_not_errors():
    record = extract_image_metadata({})
    assert list(record) == list(RECORD_KEYS)
    assert record["id"] is None and record["url"] is None and record["generation"] is None
    with pytest.raises(TypeError):
        extract_image_metadata(["not", "a", "mapping"])


def test_token_is_removed_from_urls():
    assert strip_token(URL + "?token=" + SECRET) == URL
    assert strip_token(URL + "?a=1&token=" + SECRET + "&b=2") == URL + "?a=1&b=2"
    assert strip_token(URL + "?a=1&Token=" + SECRET) == URL + "?a=1"
    record = extract_image_metadata(api_item(A1111_META, url=URL + "?token=" + SECRET))
    assert SECRET not in json.dumps(record)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_meta_keys = st.sampled_from(
    [
        "prompt",
        "negativePrompt",
        "seed",
        "steps",
        "sampler",
        "cfgScale",
        "clipSkip",
        "Clip skip",
        "Size",
        "Model",
        "Model hash",
        "hashes",
        "resources",
        "comfy",
        "id",
        "meta",
        "other",
    ]
)


@settings(max_examples=120, deadline=None)
@given(
    meta=st.one_of(_json, st.dictionaries(_meta_keys, _json, max_size=8)),
    top=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "url",
                "width",
                "height",
                "nsfwLevel",
                "stats",
                "type",
                "postId",
                "username",
                "user",
                "modelVersionIds",
                "createdAt",
            ]
        ),
        _json,
        max_size=6,
    ),
)
def test_odd_shapes_never_raise_and_stay_json_safe(meta, top):
    record = extract_image_metadata({**top, "meta": meta})
    json.dumps(record, allow_nan=False)
    assert list(record) == list(RECORD_KEYS)
    assert record["generation"] is None or isinstance(record["generation"], dict)


# ---------------------------------------------------------------------------------------- files


@pytest.fixture
def record():
    return extract_image_metadata(api_item(A1111_META), {"model_id": 7, "model_name": "Anim"})


def test_json_sidecar_holds_the_full_record(tmp_path, record):
    image = str(tmp_path / "4242.jpeg")
    noise().save(image, "JPEG")
    paths = save_metadata(image, record, "json")
    assert paths == [str(tmp_path / "4242.json")]
    raw = open(paths[0], "rb").read()
    assert json.loads(raw.decode("utf-8")) == record
    nonlatin = extract_image_metadata(api_item({"prompt": "夕焼け"}))
    save_metadata(image, nonlatin, ["json"])
    assert "夕焼け".encode("utf-8") in open(paths[0], "rb").read()  # ensure_ascii=False
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_txt_sidecar_starts_with_infotext(tmp_path, record):
    image = str(tmp_path / "4242.png")
    noise().save(image, "PNG")
    (path,) = save_metadata(image, record, "txt")
    text = open(path, encoding="utf-8").read()
    infotext, _, facts = text.partition("\n\n")
    parsed = parse_infotext(infotext)
    assert parsed["prompt"] == A1111_META["prompt"]
    assert parsed["params"]["Seed"] == "1234567890123"
    assert parsed["params"]["Lora hashes"] == "add_detail: 7c6bad76eb54, film: aa11"
    assert len(NOTES_PARAM_RE.findall(infotext.split("\n")[-1])) >= 10
    assert "Civitai image: 4242" in facts and "Creator: alice" in facts
    assert "Model: Anim (id 7)" in facts and "LoRAs: add_detail (0.6), film (1)" in facts


def test_several_formats_at_once(tmp_path, record):
    image = str(tmp_path / "4242.jpeg")
    noise().save(image, "JPEG")
    before = Image.open(image).tobytes()
    paths = save_metadata(image, record, "json, txt, exif")
    assert paths == [str(tmp_path / "4242.json"), str(tmp_path / "4242.txt"), image]
    exif = piexif.load(image)
    comment = piexif.helper.UserComment.load(exif["Exif"][piexif.ExifIFD.UserComment])
    assert comment == open(paths[1], encoding="utf-8").read().partition("\n\n")[0]
    assert Image.open(image).tobytes() == before


def test_exif_falls_back_to_txt_when_png_has_its_own_parameters(tmp_path, record, caplog):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "their own\nSteps: 1, Sampler: Euler, Seed: 2")
    image = str(tmp_path / "orig.png")
    noise().save(image, "PNG", pnginfo=info)
    before = open(image, "rb").read()
    with caplog.at_level(logging.INFO, logger="scripts.civitai_manager_libs.metadata.record"):
        paths = save_metadata(image, record, ["exif"])
    assert paths == [str(tmp_path / "orig.txt")]
    assert open(image, "rb").read() == before
    assert "already carries its own 'parameters'" in caplog.text
    assert open(paths[0], encoding="utf-8").read().startswith(A1111_META["prompt"])


def test_exif_for_video_and_missing_generation_gives_sidecar(tmp_path, record):
    video = str(tmp_path / "clip.mp4")
    with open(video, "wb") as handle:
        handle.write(b"\x00\x00\x00\x18ftypisom" + bytes(100))
    assert save_metadata(video, record, "exif") == [str(tmp_path / "clip.txt")]
    assert save_metadata(video, record, "txt,exif") == [str(tmp_path / "clip.txt")]
    image = str(tmp_path / "bare.png")
    noise().save(image, "PNG")
    before = open(image, "rb").read()
    empty = extract_image_metadata(api_item(None))
    (path,) = save_metadata(image, empty, "exif")
    assert open(image, "rb").read() == before
    assert open(path, encoding="utf-8").read().startswith("(no generation data")


def test_unknown_format_and_unwritable_folder_raise_metadata_error(tmp_path, record):
    image = str(tmp_path / "x.png")
    noise().save(image, "PNG")
    with pytest.raises(MetadataError, match="unknown metadata format 'xml'"):
        save_metadata(image, record, "json,xml")
    assert save_metadata(image, record, "") == []
    with pytest.raises(MetadataError, match="could not write"):
        save_metadata(str(tmp_path / "missing-dir" / "x.png"), record, "json")


def test_api_key_never_reaches_any_file(tmp_path, monkeypatch):
    """The key the settings hold is registered as a secret when read (every run's client reads
    it: ``ClientOptions.from_settings``); metadata scrubs every registered secret."""
    from scripts.civitai_manager_libs.transport.client_options import ClientOptions

    monkeypatch.setenv("CIVITAI_API_KEY", SECRET)
    assert ClientOptions.from_settings().api_key == SECRET
    meta = dict(A1111_META, prompt="see https://civitai.com/api/download?token=" + SECRET)
    meta["Comment"] = "key " + SECRET
    item = api_item(meta, url=URL + "?token=" + SECRET)
    record = extract_image_metadata(item)
    for name, fmt in (("a.png", "PNG"), ("b.jpeg", "JPEG"), ("c.webp", "WEBP")):
        image = str(tmp_path / name)
        noise().save(image, fmt)
        save_metadata(image, record, "json,txt,exif")
    for name in os.listdir(tmp_path):
        data = open(tmp_path / name, "rb").read()
        for encoding in ("utf-8", "utf-16-be", "latin-1"):
            assert SECRET.encode(encoding) not in data, (name, encoding)
    assert "[redacted]" in open(tmp_path / "a.json", encoding="utf-8").read()


# -------------------------------------------------------------------- against the local Civitai


def test_every_meta_shape_from_the_fake_civitai_round_trips(fake_civitai, tmp_path):
    base = fake_civitai.base_url
    listing = requests.get(
        base + "/api/v1/images", params={"withMeta": "true", "limit": 200, "nsfw": "X"}, timeout=10
    ).json()
    items = listing["items"]
    assert len(items) >= 50
    shapes_seen = set()
    written = kept_own = 0
    for item in items:
        record = extract_image_metadata(item)
        json.dumps(record, allow_nan=False)
        fake = fake_civitai.dataset.image(item["id"])
        shapes_seen.add(fake.meta_shape)
        assert record["id"] == fake.id and record["creator"] == fake.username
        gen = record["generation"]
        if fake.meta is None or fake.meta_hidden:
            assert gen is None
            continue
        assert gen["prompt"] == fake.meta.get("prompt")
        seed = fake.meta.get("seed")
        if seed is not None:
            assert gen["seed"] == int(seed)
        if fake.media in ("png", "jpeg", "webp") and written < 40 and gen.get("steps") is not None:
            original = re.sub(r"/width=\d+/", "/original=true/", item["url"])
            data = requests.get(original, timeout=10).content
            image = str(tmp_path / f"{fake.id}.{fake.media}")
            with open(image, "wb") as handle:
                handle.write(data)
            own = read_infotext(image)
            paths = save_metadata(image, record, "json,exif")
            written += 1
            if fake.embedded == "a1111":  # the upload carries its own parameters: kept as is
                assert own and read_infotext(image) == own
                assert open(image, "rb").read() == data
                kept_own += 1
                if own == to_infotext(record):  # the very same text: nothing to add, no sidecar
                    assert paths[-1] == image
                    text = own
                else:
                    assert paths[-1] == str(tmp_path / f"{fake.id}.txt")
                    text = open(paths[-1], encoding="utf-8").read().partition("\n\n")[0]
            else:
                assert paths[-1] == image
                text = read_infotext(image)
            assert text == to_infotext(record)
            parsed = parse_infotext(text)
            # The LoRAs the prompt lacks are appended as <lora:name:w> tags (issue 13).
            prompt = with_lora_tags(gen["prompt"], record["resources"])
            assert parsed["prompt"] == "\n".join(x.strip() for x in prompt.split("\n"))
            assert parsed["params"]["Steps"] == str(gen["steps"])
    assert written >= 20 and kept_own >= 1
    assert {
        "a1111",
        "a1111_clip_skip_string",
        "numbers_as_strings",
        "model_object",
        "comfy",
        "unicode_multiline",
        "null",
        "hidden",
    } <= shapes_seen

    one = items[0]["id"]
    wrapped = requests.get(
        base + "/api/v1/images",
        params={"imageId": one, "withMeta": "true", "nsfw": "X"},
        timeout=10,
    ).json()["items"][0]
    assert set(wrapped["meta"]) == {"id", "meta"}
    direct = extract_image_metadata(items[0])
    assert extract_image_metadata(wrapped)["generation"] == direct["generation"]

    model = fake_civitai.dataset.models[0]
    body = requests.get(f"{base}/api/v1/models/{model.id}", timeout=10).json()
    version = body["modelVersions"][0]
    for image in version["images"]:
        record = extract_image_metadata(
            image, {"model_id": body["id"], "model_name": body["name"], "version_id": version["id"]}
        )
        assert record["id"] is not None and record["id"] == int(image["url"].rsplit("/")[-1][:-5])
        assert record["model_name"] == body["name"]


def test_generation_from_an_original_files_own_infotext(tmp_path):
    own = (
        "a knight, 城\nNegative prompt: blurry\nSteps: 30, Sampler: DDIM, CFG scale: 6.5, "
        "Seed: 42, Size: 512x768, Model hash: abcd, Model: dream, Clip skip: 2, "
        'Hires upscale: 2, Lora hashes: "detail: 11aa, film: 22bb"'
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", own)
    image = str(tmp_path / "orig.png")
    noise().save(image, "PNG", pnginfo=info)
    hidden = extract_image_metadata(api_item(None))
    filled = with_file_generation(hidden, image)
    assert hidden["generation"] is None  # the input record is not modified
    gen = filled["generation"]
    assert (gen["prompt"], gen["negative_prompt"]) == ("a knight, 城", "blurry")
    assert (gen["steps"], gen["cfg_scale"], gen["seed"], gen["clip_skip"]) == (30, 6.5, 42, 2)
    assert (gen["sampler"], gen["size"], gen["model"], gen["model_hash"]) == (
        "DDIM",
        "512x768",
        "dream",
        "abcd",
    )
    assert gen["hashes"] == {"lora:detail": "11aa", "lora:film": "22bb", "model": "abcd"}
    assert [lora["name"] for lora in gen["loras"]] == ["detail", "film"]
    assert gen["extra"] == {"Hires upscale": "2"}
    assert to_infotext(filled) == own  # WebUI's text comes back out unchanged
    with_meta = extract_image_metadata(api_item({"prompt": "from civitai", "seed": 1}))
    assert with_file_generation(with_meta, image)["generation"]["prompt"] == "from civitai"
    plain = str(tmp_path / "plain.png")
    noise().save(plain, "PNG")
    assert with_file_generation(hidden, plain)["generation"] is None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_infotext_gives_a_json_safe_generation_or_none(text):
    generation = generation_from_infotext(text)
    assert generation is None or isinstance(generation["extra"], dict)
    json.dumps(generation, allow_nan=False)


def test_prompt_and_seed_only_meta_gets_a_parameters_line_webui_reads(tmp_path):
    # Issue 11 item 1: WebUI must see Seed and Size even when meta has fewer than 3 parameters.
    record = extract_image_metadata(api_item({"prompt": "a fox", "seed": "5"}))
    image = str(tmp_path / "fox.png")
    noise().save(image, "PNG")
    (txt,) = save_metadata(image, record, "txt")
    content = open(txt, encoding="utf-8").read()
    assert content.startswith("a fox\nSeed: 5, Size: 832x1216, Civitai image: 4242\n\n")
    save_metadata(image, record, "exif")
    parsed = parse_infotext(read_infotext(image))
    assert parsed["prompt"] == "a fox"
    assert parsed["params"]["Seed"] == "5" and (parsed["width"], parsed["height"]) == (832, 1216)


def test_listing_context_wins_over_the_item():
    item = api_item({"prompt": "p"}, modelId=3, modelVersionIds=[11, 12])
    record = extract_image_metadata(item, {"model_id": 7, "version_id": 12})
    assert (record["model_id"], record["version_id"]) == (7, 12)
    alone = extract_image_metadata(item)
    assert (alone["model_id"], alone["version_id"]) == (3, None)  # two versions: ambiguous


def test_a_record_shares_no_value_with_its_item():
    """The record is built from a shallow view of the item: changing anything in the record
    (as a writer or a caller may) never changes the listed item it came from."""
    import json

    from scripts.civitai_manager_libs.civitai.image_items import to_image_item

    raw = {
        "id": 5,
        "url": "https://image.civitai.com/x/y/width=450/5.jpeg",
        "meta": {"prompt": "a cat", "seed": 1, "resources": [{"name": "l", "weight": 0.8}]},
        "stats": {"likeCount": 3},
        "tags": ["a"],
    }
    item = to_image_item(raw, {})
    before = json.dumps([item.raw, item.meta], sort_keys=True)

    def scribble(value):
        if isinstance(value, dict):
            for key in list(value):
                value[key] = scribble(value[key])
            value["added"] = 1
        elif isinstance(value, list):
            value[:] = [scribble(v) for v in value] + ["added"]
        else:
            return "changed"
        return value

    scribble(extract_image_metadata(item))
    assert json.dumps([item.raw, item.meta], sort_keys=True) == before
