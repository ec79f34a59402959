"""Build the fake datasets: ``build_default`` (tests, demo) and ``build_generated`` (benchmarks).

Both are deterministic for a given seed. Only metadata is built here; bytes come later, on demand.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid as _uuid
from typing import Any, Dict, List, Tuple

from . import media
from .entities import NSFW_BROWSING_LEVELS, Creator, FakeImage, FakeModel, FakeVersion
from .meta_shapes import build_meta, civitai_2026, comfy_2026, pick_shape

# 2026-06-01T00:00:00Z: the dataset's "now", so `period` filters stay deterministic.
DATASET_NOW_MS = 1_780_272_000_000
DAY_MS = 86_400_000
BLURHASH_ALPHABET = (
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
)
LONG_MODEL_NAME = ("Extremely Verbose Photorealistic Portrait Merge " * 7)[:300]
HOSTILE_MODEL_NAME = "../../x con\\a:b*?"
HOSTILE_CREATOR = "..%2f.."
RESERVED_CREATOR = "con"
UNICODE_CREATOR = "画師タロウ"
NUMERIC_CREATOR = Creator("20250101", 107)  # all digits: the API sends it as a JSON number
# Civitai lists items uploaded since 2025-09 as /<uuid>/original=true/<uuid>.jpeg
UUID_URLS_SINCE_MS = 1_756_684_800_000
UUID_URL_MODELS = (88001, 90210)

CREATORS = (
    Creator("alice_art", 101),
    Creator("BobMakes", 102),
    Creator("pixel_witch", 103),
    Creator(UNICODE_CREATOR, 104),
    Creator(RESERVED_CREATOR, 105),
    Creator(HOSTILE_CREATOR, 106),
)

# (model id, name, type, nsfw, creator, tags, [(version id, version name, base model, images)])
MODELS = (
    (
        4201,
        "DreamShaper",
        "Checkpoint",
        False,
        "alice_art",
        ("anime", "photorealistic", "base model"),
        [(128713, "8", "SD 1.5", 120), (109123, "7", "SD 1.5", 80), (43888, "6.31", "SD 1.5", 30)],
    ),
    (
        4384,
        "Realistic Vision",
        "Checkpoint",
        False,
        "BobMakes",
        ("photorealistic",),
        [(245598, "V6.0 B1", "SD 1.5", 20), (130072, "V5.1", "SD 1.5", 14)],
    ),
    (
        58390,
        "Detail Tweaker LoRA",
        "LORA",
        False,
        "pixel_witch",
        ("tool", "detail"),
        [(62833, "v1.0", "SD 1.5", 12), (87153, "v1.1", "SDXL 1.0", 9)],
    ),
    (
        66666,
        HOSTILE_MODEL_NAME,
        "LORA",
        False,
        HOSTILE_CREATOR,
        ("concept",),
        [(70001, "v1", "SD 1.5", 8), (70002, 'v2: "final"', "SD 1.5", 7)],
    ),
    (
        77777,
        LONG_MODEL_NAME,
        "Checkpoint",
        False,
        RESERVED_CREATOR,
        ("photorealistic", "portraits"),
        [
            (80001, "alpha", "SDXL 1.0", 6),
            (80002, "beta", "SDXL 1.0", 6),
            (80003, "rc", "SDXL 1.0", 5),
        ],
    ),
    (
        88001,
        "アニメ Style ✨ 夜桜",
        "LORA",
        False,
        UNICODE_CREATOR,
        ("anime", "style"),
        [(88101, "初版", "SD 1.5", 12), (88102, "v2 ✨", "Illustrious", 10)],
    ),
    (
        90210,
        "Pony Diffusion V6 XL",
        "Checkpoint",
        True,
        "BobMakes",
        ("anime", "furry", "base model"),
        [(290640, "V6 (start with this one)", "Pony", 14), (290641, "V6 (no VAE)", "Pony", 8)],
    ),
    (
        99001,
        "Cinematic Motion",
        "MotionModule",
        False,
        "alice_art",
        ("video", "animation"),
        [(99101, "v1", "SDXL 1.0", 6), (99102, "v2", "SDXL 1.0", 5)],
    ),
)
VIDEO_MODEL_ID = 99001
VIDEO_COUNT = 4
DETAIL_LORA = 62833  # Detail Tweaker LoRA v1.0, used by some DreamShaper images
DETAIL_LORA_BASE_MODEL = 4201
DOUBLE_LISTED = ((128713, 109123), (70001, 70002))  # images listed under two versions
TAGS: Dict[int, str] = {4: "anime", 5133: "woman", 5193: "landscape", 111763: "car", 3628: "sci-fi"}
SIZES = (
    (512, 512),
    (384, 512),
    (512, 384),
    (320, 448),
    (256, 384),
    (448, 320),
    (128, 128),
    (64, 96),
)
LORA_NAMES = ("add_detail", "epi_noiseoffset2", "more_details", "アニメ線画")
NSFW_WEIGHTS = {"None": 55, "Soft": 20, "Mature": 15, "X": 10}


def _uuid4(rng: random.Random) -> str:
    return str(_uuid.UUID(int=rng.getrandbits(128), version=4))


def _blurhash(rng: random.Random) -> str:
    return "U" + "".join(rng.choice(BLURHASH_ALPHABET) for _ in range(27))


def _stats(rng: random.Random) -> Tuple[Dict[str, int], int]:
    def heavy(scale: int) -> int:
        return int(rng.paretovariate(1.3) * scale) - scale

    stats = {
        "cryCount": heavy(2),
        "laughCount": heavy(3),
        "likeCount": heavy(40),
        "dislikeCount": heavy(1),
        "heartCount": heavy(25),
        "commentCount": heavy(4),
    }
    return stats, heavy(10)


def _level(rng: random.Random, nsfw_model: bool) -> str:
    weights = dict(NSFW_WEIGHTS)
    if nsfw_model:
        weights.update({"None": 15, "Mature": 35, "X": 35})
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def build_default(seed: int = 0) -> Dict[str, Any]:
    rng = random.Random(seed)
    models: List[FakeModel] = []
    slots: List[Tuple[FakeModel, FakeVersion]] = []
    for model_id, name, mtype, nsfw, creator, tags, versions in MODELS:
        model = FakeModel(model_id, name, mtype, nsfw, creator, tuple(tags))
        for index, (version_id, vname, base, count) in enumerate(versions):
            # Versions are listed newest first, as Civitai does.
            created = DATASET_NOW_MS - (500 + 150 * index) * DAY_MS - model_id
            version = FakeVersion(version_id, model_id, vname, base, created, (name.split()[0],))
            model.versions.append(version)
            slots.extend([(model, version)] * count)
        models.append(model)
    rng.shuffle(slots)

    # Old videos would be odd: put the video model's slots late in time.
    slots.sort(key=lambda mv: mv[0].id == VIDEO_MODEL_ID)
    n = len(slots)
    created = DATASET_NOW_MS - 700 * DAY_MS
    image_id = 12_000_000
    images: List[FakeImage] = []
    video_slots_left = VIDEO_COUNT
    creators = [c.username for c in CREATORS]
    for index, (model, version) in enumerate(slots):
        image_id += rng.randint(1, 40)
        if index >= n - 5:  # the newest five are less than a day old: `period=Day` finds them
            created = max(
                created + 1, DATASET_NOW_MS - (n - index) * 3_600_000 - rng.randrange(1000)
            )
        else:
            created += rng.randint(1, 2 * 700 * DAY_MS // n)
        is_video = model.id == VIDEO_MODEL_ID and video_slots_left > 0
        video_slots_left -= int(is_video)
        width, height = (320, 240) if is_video else rng.choice(SIZES)
        level = _level(rng, model.nsfw)
        shape = "null" if is_video and index % 2 else ("minimal" if is_video else pick_shape(rng))
        version_ids = [version.id]
        meta = build_meta(shape, rng, width, height, model.name, LORA_NAMES, version_ids)
        kind = "mp4" if is_video else rng.choices(("png", "jpeg", "webp"), (40, 40, 20))[0]
        embedded = None
        if kind == "png" and meta and shape in ("a1111", "hidden", "unicode_multiline"):
            embedded = "a1111" if rng.random() < 0.6 else None
        username = model.creator if rng.random() < 0.4 else rng.choice(creators)
        stats, collected = _stats(rng)
        images.append(
            FakeImage(
                id=image_id,
                uuid=_uuid4(rng),
                media=kind,
                width=width,
                height=height,
                nsfw_level=level,
                browsing_level=rng.choice(NSFW_BROWSING_LEVELS[level]),
                type="video" if is_video else "image",
                created_ms=created,
                post_id=0,
                username=username,
                user_id=0,
                model_id=model.id,
                model_version_ids=tuple(version_ids),
                base_model=version.base_model,
                meta=meta,
                meta_shape=shape,
                stats=stats,
                collected=collected,
                tag_ids=tuple(rng.sample(sorted(TAGS), rng.randint(0, 3))),
                blurhash=_blurhash(rng),
                embedded=embedded,
            )
        )
    _guarantee_variety(images, rng)
    _best_foot_forward(images)
    _assign_posts(images, rng)
    _real_2026_shapes(images)
    _add_lora_resources(images)
    everyone = list(CREATORS) + [NUMERIC_CREATOR]
    return dict(creators=everyone, models=models, images=images, now_ms=DATASET_NOW_MS, seed=seed)


def _picked(image: FakeImage, salt: str, every: int) -> bool:
    digest = hashlib.sha256(f"{salt}:{image.id}".encode()).hexdigest()
    return int(digest, 16) % every == 0


def _real_2026_shapes(images: List[FakeImage]) -> None:
    """What real 2025-2026 listings hold that the first dataset lacked (issue 11): 2026 ``meta``
    shapes, a numeric username, ``Blocked`` and unrated items, ``original=true/<uuid>`` URLs.

    Chosen from each image's id, never from the random stream, so every other image stays as it
    was; only images whose original carries no generation data of its own get a new ``meta``.
    """
    stills = [i for i in images if i.media != "mp4"]
    for image in stills:
        if image.embedded is not None or image.meta is None:
            continue
        if image.meta_shape == "a1111" and _picked(image, "civitai_2026", 3):
            image.meta = civitai_2026(image.meta, image.id, image.width, image.height)
            image.meta_shape = "civitai_2026"
        elif image.meta_shape == "comfy" and _picked(image, "comfy_2026", 2):
            image.meta = comfy_2026(image.meta, image.id, image.width, image.height)
            image.meta_shape = "comfy_2026"
    # One post of the LoRA model by a creator whose name is all digits.
    lora = [i for i in stills if i.model_id == 58390]
    if lora:
        for image in [i for i in lora if i.post_id == lora[0].post_id]:
            image.username, image.user_id = NUMERIC_CREATOR.username, NUMERIC_CREATOR.user_id
    # Blocked items (served only when the mask asks for bit 32) and unrated items (level 0,
    # shown as "None" and listed with PG); the first stills keep the levels tests rely on.
    late = [i for i in stills if i.model_id in UUID_URL_MODELS]
    rated = [i for i in late if i.nsfw_level in ("Soft", "Mature")]
    for image in rated[-2:]:
        image.nsfw_level, image.browsing_level = "Blocked", 32
    unrated = [i for i in late if i.nsfw_level == "None" and i.meta_shape != "comfy_2026"]
    for image in unrated[-3:]:
        image.browsing_level = 0
    # The newer URL form, on the recent uploads of two models (tests that address images by
    # the id in their file name use the others).
    for image in images:
        if image.model_id in UUID_URL_MODELS and image.created_ms >= UUID_URLS_SINCE_MS:
            image.uuid_url = True


def _reactions(image: FakeImage) -> int:
    keys = ("likeCount", "heartCount", "laughCount", "cryCount")
    return sum(int(image.stats.get(key, 0)) for key in keys)


def _best_foot_forward(images: List[FakeImage]) -> None:
    """The first thumbnail a model shows (most reactions, default NSFW levels) carries a prompt,
    so the demo's first click shows what the tool does best: its stats trade places with those
    of the model's most-reacted image that has one."""
    for model_id in sorted({image.model_id for image in images}):
        shown = [
            i
            for i in images
            if i.model_id == model_id and i.nsfw_level in ("None", "Soft") and i.media != "mp4"
        ]
        if not shown:
            continue
        first = max(shown, key=lambda i: (_reactions(i), i.id))
        if first.meta and first.meta.get("prompt"):
            continue
        with_prompt = [i for i in shown if i.meta and i.meta.get("prompt")]
        if with_prompt:
            best = max(with_prompt, key=lambda i: (_reactions(i), i.id))
            first.stats, best.stats = best.stats, first.stats


def _guarantee_variety(images: List[FakeImage], rng: random.Random) -> None:
    """Make sure every case tests rely on exists, whatever the seed drew."""
    stills = [i for i in images if i.media != "mp4"]
    for image, level in zip(stills[:4], NSFW_BROWSING_LEVELS):
        image.nsfw_level = level
        image.browsing_level = NSFW_BROWSING_LEVELS[level][0]
    x_items = [i for i in stills if i.nsfw_level == "X"]
    if x_items:
        x_items[-1].browsing_level = 16
    for image in stills[:5]:  # the oldest items predate the `type` field
        image.type = None
    comfy = [i for i in stills if i.meta_shape == "comfy"]
    if comfy:
        comfy[0].media = "png"
        comfy[0].embedded = "comfy"
    # Some JPEG uploads carry A1111's EXIF UserComment (decided from the id: the RNG stream, and
    # so every other image, stays as it was before this was added).
    for image in stills:
        if image.media == "jpeg" and image.meta_shape in ("a1111", "unicode_multiline"):
            if int(hashlib.sha256(f"exif:{image.id}".encode()).hexdigest(), 16) % 3 == 0:
                image.embedded = "a1111"
    for first, second in DOUBLE_LISTED:
        for image in [i for i in stills if i.model_version_ids == (first,)][:2]:
            image.model_version_ids = (first, second)


def _add_lora_resources(images: List[FakeImage]) -> None:
    """Some DreamShaper images also used the Detail Tweaker LoRA (``--used-with`` finds them in
    ``meta.civitaiResources``). Chosen from the id, so the RNG stream stays as it was."""
    for image in images:
        resources = (image.meta or {}).get("civitaiResources")
        if image.model_id != DETAIL_LORA_BASE_MODEL or not isinstance(resources, list):
            continue
        if int(hashlib.sha256(f"lora:{image.id}".encode()).hexdigest(), 16) % 4 == 0:
            resources.append({"type": "lora", "weight": 0.7, "modelVersionId": DETAIL_LORA})


def _assign_posts(images: List[FakeImage], rng: random.Random) -> None:
    """Group each version's images into posts of 1–4 images by one user."""
    user_ids = {c.username: c.user_id for c in CREATORS}
    by_version: Dict[int, List[FakeImage]] = {}
    for image in images:
        by_version.setdefault(image.model_version_ids[0], []).append(image)
    post_id = 3_000_000
    for version_id in sorted(by_version):
        group = by_version[version_id]
        index = 0
        while index < len(group):
            size = rng.randint(1, 4)
            post_id += rng.randint(1, 9)
            owner = group[index].username
            for image in group[index : index + size]:
                image.post_id = post_id
                image.username = owner
                image.user_id = user_ids[owner]
            index += size


def _noise_side(target_bytes: int, seed: int) -> int:
    """Side of a square noise JPEG a little under ``target_bytes`` (padding adds the rest).

    Estimated from a sample, then checked on the four real bases (``Dataset._noise_base`` uses
    seeds ``seed * 10 + variant``) and shrunk until every one of them fits.
    """
    sample = media.noise_jpeg(seed * 10, 96, 96)
    header = 700
    per_pixel = (len(sample) - header) / (96 * 96)
    side = max(1, int(math.sqrt(max(1, 0.9 * target_bytes - header) / per_pixel)))
    while side > 1:
        if all(
            len(media.noise_jpeg(seed * 10 + variant, side, side)) <= 0.97 * target_bytes
            for variant in range(4)
        ):
            break
        side = int(side * 0.9)
    return side


def build_generated(
    n_images: int, image_kb: int = 200, seed: int = 0, nsfw_level: str = "None"
) -> Dict[str, Any]:
    if n_images < 0 or image_kb <= 0:
        raise ValueError("n_images must be >= 0 and image_kb > 0")
    if nsfw_level not in NSFW_BROWSING_LEVELS:
        raise ValueError(f"nsfw_level must be one of {list(NSFW_BROWSING_LEVELS)}")
    rng = random.Random(seed)
    target = image_kb * 1024
    side = _noise_side(target, seed)
    creator = Creator("bench_user", 900)
    version = FakeVersion(500_001, 500_000, "v1", "SD 1.5", DATASET_NOW_MS - 30 * DAY_MS)
    model = FakeModel(500_000, "Benchmark Model", "Checkpoint", False, creator.username, ("bench",))
    model.versions.append(version)
    start = DATASET_NOW_MS - 20 * DAY_MS
    images = []
    for index in range(n_images):
        image_id = 60_000_000 + index
        images.append(
            FakeImage(
                id=image_id,
                uuid=str(_uuid.UUID(int=rng.getrandbits(128), version=4)),
                media="jpeg",
                width=side,
                height=side,
                nsfw_level=nsfw_level,
                browsing_level=NSFW_BROWSING_LEVELS[nsfw_level][0],
                type="image",
                created_ms=start + index * 60_000,
                post_id=4_000_000 + index // 4,
                username=creator.username,
                user_id=creator.user_id,
                model_id=model.id,
                model_version_ids=(version.id,),
                base_model=version.base_model,
                meta={
                    "prompt": f"benchmark image {index}, noise",
                    "negativePrompt": "lowres",
                    "seed": index,
                    "steps": 20,
                    "sampler": "Euler a",
                    "cfgScale": 7,
                    "Size": f"{side}x{side}",
                },
                meta_shape="minimal",
                stats={
                    "cryCount": 0,
                    "laughCount": index % 5,
                    "likeCount": index % 97,
                    "dislikeCount": 0,
                    "heartCount": index % 13,
                    "commentCount": index % 7,
                },
                collected=index % 11,
                padded_size=target,
            )
        )
    return dict(
        creators=[creator],
        models=[model],
        images=images,
        now_ms=DATASET_NOW_MS,
        seed=seed,
        image_kb=image_kb,
    )
