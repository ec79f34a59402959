"""``doctor``: a handful of small questions to the live service, each compared with what this
version expects of Civitai's REST API (``src/pages/api/v1/images/index.ts``, ``models/[id].ts``,
``model-versions/[id].ts``, ``model-versions/by-hash/[hash].ts`` of Civitai's source) and answered
in plain words: what matches, what changed, what to do.

Per front: one page of images without ``withMeta`` (``{"items", "metadata"}``; items with ``id``,
``url``, ``nsfwLevel``, ``width``, ``height``; ``meta`` null), the same page with
``withMeta=true`` (some items carry generation data), mature levels where they should be served,
then one model version named by a listed image, its model, a look-up by the version's file
SHA-256 (the same version comes back), and the headers of one original file (a ranged GET of one
byte: 200/206 and an image or video type). Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

import requests

from ..errors import ApiError, NetworkError, RateLimitedError, RefusedUrlError, ServerError
from ..records import NSFW_LEVELS
from ..util.url_gate import check_download_url
from .drift import host_of, known_host, listing_body
from .image_items import unwrap_meta
from .image_urls import original_url

OK, CHANGED, UNREACHABLE = "ok", "changed", "unreachable"
PAGE = 20
MATURE_ONLY = 28  # browsingLevel R | X | XXX
_ITEM_KEYS = ("id", "url", "nsfwLevel", "width", "height")


@dataclass
class Finding:
    """One question's answer: ``status`` (ok / changed / unreachable), what was seen, what to do."""

    front: str
    question: str
    status: str
    said: str
    todo: str = ""


class _Stop(Exception):
    """A question could not be asked (its answer is already a finding)."""


class Doctor:
    """Ask ``client`` (a CivitaiHttpClient on one front) the questions; ``findings`` holds the
    answers. ``mature``: whether this front should serve Mature and X images."""

    def __init__(self, client: Any, front: str, mature: bool):
        self.client = client
        self.front = front
        self.mature = mature
        self.findings: List[Finding] = []
        self.items: List[Mapping[str, Any]] = []  # the first page asked
        self.api_host = host_of(getattr(client, "base_url", None)) or ""

    def _say(self, question: str, status: str, said: str, todo: str = "") -> None:
        self.findings.append(Finding(self.front, question, status, said, todo))

    def _get(self, question: str, path: str, params: Optional[Dict[str, Any]] = None) -> Any:
        try:
            return self.client.get_json(path, params)
        except (NetworkError, ServerError, RateLimitedError) as exc:
            self._say(
                question,
                UNREACHABLE,
                f"no answer: {exc}",
                "check the network and the "
                "address (--base-url / --red-base-url), or try again later",
            )
        except ApiError as exc:
            self._say(
                question,
                CHANGED,
                f"refused: {exc}",
                "this request no longer works as " "it did; please report it",
            )
        raise _Stop()

    def run(self) -> List[Finding]:
        for question in (self._images, self._version_chain, self._original):
            try:
                question()
            except _Stop:
                pass
            if any(f.status == UNREACHABLE for f in self.findings):
                break
        return self.findings

    # -- the images endpoint -----------------------------------------------------------------

    def _page(self, question: str, empty_ok: bool = False, **extra: Any) -> List[Mapping[str, Any]]:
        params = {"limit": PAGE, "nsfw": "X" if self.mature else "Soft", **extra}
        body, shape = listing_body(self._get(question, "/api/v1/images", params))
        if body is None or shape is not None:
            self._say(
                question,
                CHANGED,
                f"the answer is not {{items, metadata}} ({shape})",
                "listings may fail or lose images; please report it",
            )
            raise _Stop()
        items = [item for item in body["items"] if isinstance(item, Mapping)]
        if not items and not empty_ok:
            self._say(question, CHANGED, "the page holds no images", "please report it")
            raise _Stop()
        return items

    def _images(self) -> None:
        q = "images page"
        items = self.items = self._page(q)
        missing = sorted({k for item in items for k in _ITEM_KEYS if item.get(k) is None})
        levels = sorted({str(i.get("nsfwLevel")) for i in items} - set(NSFW_LEVELS))
        hosts = {h for h in (host_of(i.get("url")) for i in items) if h}
        strangers = sorted(h for h in hosts if not known_host(h, {self.api_host}))
        if missing or levels or strangers:
            said = "; ".join(
                part
                for part in (
                    f"items without {', '.join(missing)}" if missing else "",
                    f"unknown levels {', '.join(levels)}" if levels else "",
                    f"image URLs on unknown hosts {', '.join(strangers)}" if strangers else "",
                )
                if part
            )
            self._say(q, CHANGED, said, "downloads may skip or misplace images; please report it")
        else:
            self._say(q, OK, f"{len(items)} images with id, url, nsfwLevel, width and height")
        bare = sum(1 for i in items if unwrap_meta(i.get("meta")) is None)
        if bare < len(items):
            self._say(
                "images without withMeta",
                CHANGED,
                f"{len(items) - bare} of {len(items)} carry generation data unasked",
                "harmless for downloads; please report it so the notes can be updated",
            )
        else:
            self._say("images without withMeta", OK, "no generation data unless asked, as expected")
        q = "images with withMeta=true"
        page = self._page(q, withMeta="true")
        rich = sum(1 for i in page if unwrap_meta(i.get("meta")))
        if rich:
            self._say(q, OK, f"{rich} of {len(page)} images carry generation data")
        else:
            self._say(
                q,
                CHANGED,
                "no image carries generation data",
                "downloads would save images without prompts; please report it",
            )
        if self.mature:
            q = "mature images"
            served = self._page(q, empty_ok=True, browsingLevel=MATURE_ONLY)
            mature = sum(1 for i in served if i.get("nsfwLevel") in ("Mature", "X"))
            if mature:
                self._say(q, OK, f"{mature} of {len(served)} images asked as Mature/X are so")
            else:
                self._say(
                    q,
                    CHANGED,
                    "Mature/X asked, none served (this front filters them)",
                    "give the front that serves every level with --red-base-url "
                    "(https://civitai.red)",
                )

    # -- model, version, by-hash, one original file ------------------------------------------

    def _version_chain(self) -> None:
        items = self.items
        if not items:  # the images page already said why
            return
        ids = [i.get("modelVersionIds") for i in items]
        version_id = next((v[0] for v in ids if isinstance(v, list) and v), None)
        if version_id is None:
            self._say(
                "model version",
                CHANGED,
                "listed images name no model version " "(modelVersionIds)",
                "model and version look-ups were not checked",
            )
        else:
            self._version(version_id)

    def _version(self, version_id: Any) -> None:
        q = "model version"
        answer = self._get(q, f"/api/v1/model-versions/{version_id}")
        body: Mapping[str, Any] = answer if isinstance(answer, Mapping) else {}
        files = body.get("files")
        checks = self._object(q, body, ("id", "modelId", "name", "files", "images"))
        sha = next(
            (
                f["hashes"].get("SHA256")
                for f in (files if isinstance(files, list) else [])
                if isinstance(f, Mapping) and isinstance(f.get("hashes"), Mapping)
            ),
            None,
        )
        if checks:
            self._say(q, OK, f"version {version_id} with its files and images")
        model_id = body.get("modelId")
        if model_id is not None:
            q = "model"
            model = self._get(q, f"/api/v1/models/{model_id}")
            if self._object(q, model, ("id", "name", "type", "modelVersions")):
                self._say(q, OK, f"model {model_id} with its versions")
        if sha:
            q = "by-hash look-up"
            found = self._get(q, f"/api/v1/model-versions/by-hash/{sha}")
            if isinstance(found, Mapping) and found.get("id") == body.get("id"):
                self._say(q, OK, "a file's SHA-256 finds its version")
            else:
                self._say(
                    q,
                    CHANGED,
                    "a file's SHA-256 did not find its version",
                    "resources (LoRA, checkpoint) may not be recognised; please report it",
                )
        elif checks:
            self._say(
                "by-hash look-up",
                CHANGED,
                "the version's files carry no SHA256 hash",
                "resources may not be recognised; please report it",
            )

    def _object(self, question: str, body: Any, keys: tuple) -> bool:
        missing = [k for k in keys if not isinstance(body, Mapping) or body.get(k) is None]
        if missing:
            self._say(
                question,
                CHANGED,
                f"the answer lacks {', '.join(missing)}",
                "names and resources may be missing from records; please report it",
            )
        return not missing

    def _original(self) -> None:
        q = "original file"
        url = next((i.get("url") for i in self.items if isinstance(i.get("url"), str)), None)
        if url is None:
            return
        try:
            url = original_url(url)
        except Exception:  # an URL of another form: asked as listed
            pass
        try:
            check_download_url(url, [self.api_host])
            with self.client.session.get(
                url,
                headers={"Range": "bytes=0-0"},
                stream=True,
                timeout=self.client.timeout,
                allow_redirects=False,  # a hop is only named here, each is gated where it is used
            ) as response:
                status, ctype = response.status_code, response.headers.get("Content-Type", "")
                location = response.headers.get("Location", "")
        except RefusedUrlError as exc:
            self._say(
                q,
                CHANGED,
                f"a listed file is where downloads may not go: {exc}",
                "please report it",
            )
            return
        except requests.RequestException as exc:
            self._say(
                q,
                UNREACHABLE,
                f"the image host did not answer ({type(exc).__name__})",
                "check the network; downloads would fail",
            )
            return
        if status in (200, 206) and ctype.split("/")[0] in ("image", "video"):
            self._say(q, OK, f"HTTP {status}, {ctype}")
        elif status in (301, 302, 303, 307, 308) and location:
            self._say(q, OK, f"HTTP {status} to {host_of(location)}")
        else:
            self._say(
                q,
                CHANGED,
                f"HTTP {status}, {ctype or 'no type'}",
                "downloads of originals may fail; please report it",
            )


def ask(fronts: List[tuple], make_client: Callable[[str], Any]) -> List[Finding]:
    """Ask every front ``(base_url, serves_mature)``; the findings of all of them."""
    findings: List[Finding] = []
    for base_url, mature in fronts:
        client = make_client(base_url)
        try:
            findings += Doctor(client, base_url, mature).run()
        finally:
            client.close()
    return findings
