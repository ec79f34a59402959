"""Issue 10 items 2, 7, 13, 14: whatever goes wrong with one listed item, one file in the way or one
page, the run ends (``wait()`` returns), the rest is downloaded and the report says why."""

from __future__ import annotations

import json
import os
import threading

import pytest
import requests
from cli_harness import (
    assert_archive_agrees,
    assert_decodable,
    download_model_args,
    generated_model_id,
    image_ids,
    media_files,
    part_files,
    run_cli,
)

pytestmark = pytest.mark.slow

GARBAGE_PNG = b"\x89PNG\r\n\x1a\ngarbage"
RUN_TIMEOUT = 90  # a hang shows up as subprocess.TimeoutExpired


def _listed_page(fake) -> dict:
    """The page the fake answers for the generated model (every item, with meta)."""
    query = {"modelId": generated_model_id(fake), "limit": 200, "withMeta": "true", "nsfw": "X"}
    answer = requests.get(fake.base_url + "/api/v1/images", params=query, timeout=10)
    answer.raise_for_status()
    fake.reset()
    return answer.json()


def _deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def _page_bytes(page: dict, raw_items: dict) -> bytes:
    """``page`` as JSON with ``"@@<name>@@"`` placeholders replaced by raw JSON text."""
    text = json.dumps(page)
    for name, raw in raw_items.items():
        text = text.replace(json.dumps(f"@@{name}@@"), raw)
    return text.encode()


def _report(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- item 2: an unreadable file in the way, a meta nested 900 deep --------------------------------


@pytest.mark.parametrize("policy", ["skip", "replace"])
def test_unreadable_file_in_the_way_is_reported_not_a_hang(generated_fake, tmp_path, policy):
    fake = generated_fake(n_images=6, image_kb=8)
    ids = image_ids(fake)
    output = tmp_path / "out"
    blocked = ids[2]
    folder = output / str(generated_model_id(fake))
    folder.mkdir(parents=True)
    (folder / f"{blocked}.png").write_bytes(GARBAGE_PNG)
    report_path = tmp_path / "report.json"
    args = download_model_args(fake, output, 3, "--metadata", "json,exif")
    args += ["--duplicates", policy, "--report", report_path]

    run = run_cli(args, tmp_path, timeout=RUN_TIMEOUT)

    assert run.returncode == 0, run.stderr
    assert "traceback" not in run.stderr.lower()
    report = _report(report_path)
    saved = media_files(output)
    assert set(saved) == set(ids)
    if policy == "skip":
        assert report["saved"] == len(ids) - 1 and report["skipped"] == 1
        assert (folder / f"{blocked}.png").read_bytes() == GARBAGE_PNG  # left as is
        (item,) = report["skipped_items"]
        assert item["image_id"] == blocked and "cannot be read" in item["reason"]
        assert "cannot be read" in run.stderr
    else:
        assert report["saved"] == len(ids) and report["skipped_items"] == []
        for path in saved[blocked]:
            assert_decodable(path)
    assert part_files(output) == []


def test_meta_nested_900_deep_never_hangs_a_rerun(generated_fake, tmp_path):
    fake = generated_fake(n_images=5, image_kb=8)
    ids = image_ids(fake)
    page = _listed_page(fake)
    deep_id = page["items"][1]["id"]
    page["items"][1]["meta"] = "@@deep@@"
    body = _page_bytes(page, {"deep": _deep(900)})
    output = tmp_path / "out"
    args = download_model_args(fake, output, 2, "--metadata", "json,exif,txt")
    report_path = tmp_path / "report.json"

    for attempt in range(2):  # the re-run used to hang for ever on the first run's leftovers
        fake.faults.queue_status("/api/v1/images", 200, body=body, server="api")
        run = run_cli([*args, "--report", report_path], tmp_path, timeout=RUN_TIMEOUT)
        assert run.returncode == 0, (attempt, run.stderr)
        report = _report(report_path)
        (item,) = report["skipped_items"]
        assert item["image_id"] == deep_id and "nested" in item["reason"], item
    saved = media_files(output)
    assert set(saved) == set(ids) - {deep_id}
    assert part_files(output) == []
    assert_archive_agrees(output, saved)


# -- item 7 and 14: malformed items are skipped with a reason, the rest goes on -------------------


def test_malformed_items_are_skipped_with_a_reason(generated_fake, tmp_path):
    fake = generated_fake(n_images=6, image_kb=8)
    ids = image_ids(fake)
    page = _listed_page(fake)
    template = dict(page["items"][0])
    huge = dict(template, id=2**70)
    deep = dict(template, id=999_000_001, meta="@@deep@@")
    url_base = template["url"].rsplit("/", 1)[0]
    no_id_a = {k: v for k, v in template.items() if k != "id"}
    no_id_a["url"] = url_base + "/first-without-id.jpeg"
    no_id_b = dict(no_id_a, url=url_base + "/second-without-id.jpeg")
    page["items"] = [huge, *page["items"], deep, no_id_a, no_id_b]
    body = _page_bytes(page, {"deep": _deep(100_000)})
    fake.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    output = tmp_path / "out"
    report_path = tmp_path / "report.json"

    run = run_cli(
        download_model_args(fake, output, 3, "--report", report_path),
        tmp_path,
        timeout=RUN_TIMEOUT,
    )

    assert run.returncode == 0, run.stderr
    assert "traceback" not in run.stderr.lower()
    report = _report(report_path)
    assert report["saved"] == len(ids)
    reasons = {str(item["image_id"]): item["reason"] for item in report["skipped_items"]}
    assert len(report["skipped_items"]) == 4, report["skipped_items"]
    assert "not a usable image id" in reasons[str(2**70)]
    assert "nested" in reasons["999000001"]
    no_id = [item for item in report["skipped_items"] if "without an id" in item["reason"]]
    assert [item["image_id"] for item in no_id] == [None, None]
    assert "skipped:" in run.report
    saved = media_files(output)
    assert set(saved) == set(ids)
    assert part_files(output) == []
    assert not any("unknown" in name for _d, _s, names in os.walk(output) for name in names)
    asked = {r.path for r in fake.image_requests()}
    assert not any("without-id" in path for path in asked)
    assert_archive_agrees(output, saved)


# -- item 13: empty pages with a fresh cursor each ------------------------------------------------


def test_endless_empty_pages_stop_with_a_clear_message(generated_fake, tmp_path):
    fake = generated_fake(n_images=3, image_kb=8)
    fake.faults.empty_pages("/api/v1/images")
    output = tmp_path / "out"

    run = run_cli(download_model_args(fake, output, 2), tmp_path, timeout=RUN_TIMEOUT)

    assert run.returncode == 1, run.stderr
    assert "empty pages in a row" in run.stderr, run.stderr
    assert len(fake.api_requests()) < 40


def test_endless_empty_pages_stop_iter_images(generated_fake):
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.errors import InvalidResponseError
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    fake = generated_fake(n_images=3, image_kb=8)
    fake.faults.empty_pages("/api/v1/images")
    api = CivitaiAPI(client=CivitaiHttpClient(api_key="", base_url=fake.base_url))
    with pytest.raises(InvalidResponseError, match="empty pages in a row"):
        list(api.iter_images({"modelId": generated_model_id(fake)}, nsfw_levels=["X"]))
    assert len(fake.api_requests()) < 40


# -- item 2: the rule itself, in process: any exception in a task or a callback ------------------


def test_any_exception_in_a_task_or_callback_ends_the_task(generated_fake, tmp_path, monkeypatch):
    from scripts.civitai_manager_libs.engine import task_runner
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.engine.pool import DownloadEngine

    fake = generated_fake(n_images=6, image_kb=8)
    ids = image_ids(fake)
    client = CivitaiHttpClient(api_key="", base_url=fake.base_url)
    real_fetch = task_runner.TaskRunner.fetch
    real_finish = task_runner.TaskRunner.finish
    # one job dies in its download half (a worker of the engine), one in its local half (the
    # post-processing pool)
    boom = {ids[1]: SystemExit("a bug leaving through the job"), ids[3]: RecursionError("deep")}

    def exploding_fetch(self, task, cancel_event):
        if task.image_id == ids[1]:
            raise boom[task.image_id]
        return real_fetch(self, task, cancel_event)

    def exploding_finish(self, task, fetched):
        if task.image_id == ids[3]:
            raise boom[task.image_id]
        return real_finish(self, task, fetched)

    monkeypatch.setattr(task_runner.TaskRunner, "fetch", exploding_fetch)
    monkeypatch.setattr(task_runner.TaskRunner, "finish", exploding_finish)
    downloader = ImageDownloader(
        api_client=CivitaiAPI(client=client),
        download_engine=DownloadEngine(client=client, max_workers=2),
        output_path=str(tmp_path / "out"),
        path_template="{id}",
        metadata_formats=["json"],
    )
    seen = []

    def bad_callback(task):
        seen.append(task.image_id)
        raise SystemExit("a callback that exits")

    downloader.register_task_finished_callback(bad_callback)
    try:
        task_ids = downloader.download_model_images(
            generated_model_id(fake), nsfw_levels=["None", "Soft", "Mature", "X"]
        )
        done = threading.Event()
        threading.Thread(target=lambda: downloader.wait() and done.set(), daemon=True).start()
        assert done.wait(60), "wait() never returned"
        statuses = {downloader.get_task(t).image_id: downloader.get_task(t) for t in task_ids}
        for image_id in boom:
            assert statuses[image_id].status == "failed"
            assert "unexpected error" in statuses[image_id].error
        assert sorted(seen) == sorted(ids)  # the callback thread survived every SystemExit
        assert sum(t.status == "completed" for t in statuses.values()) == len(ids) - 2
    finally:
        downloader.close()
        client.close()


def test_any_exception_while_planning_ends_that_task_and_the_listing_goes_on(
    generated_fake, tmp_path, monkeypatch
):
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.engine.pool import DownloadEngine
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader
    from scripts.civitai_manager_libs.planning import template_context

    fake = generated_fake(n_images=8, image_kb=8)
    ids = image_ids(fake)
    client = CivitaiHttpClient(api_key="", base_url=fake.base_url)
    downloader = ImageDownloader(
        api_client=CivitaiAPI(client=client),
        download_engine=DownloadEngine(client=client, max_workers=2),
        output_path=str(tmp_path / "out"),
        path_template="{id}",
        metadata_formats=["json"],
    )
    real_complete = template_context.TemplateContext.complete
    real_schedule = downloader.schedule

    def complete(self, item, context):  # a bug before the task exists
        if item.id == ids[2]:
            raise KeyError("a bug in the template context")
        return real_complete(self, item, context)

    def schedule(task):  # a bug after the task was registered, before the engine has it
        if task.image_id == ids[5]:
            raise RuntimeError("a bug while scheduling")
        return real_schedule(task)

    monkeypatch.setattr(template_context.TemplateContext, "complete", complete)
    monkeypatch.setattr(downloader, "schedule", schedule)
    try:
        task_ids = downloader.download_model_images(
            generated_model_id(fake), nsfw_levels=["None", "Soft", "Mature", "X"]
        )
        done = threading.Event()
        threading.Thread(target=lambda: downloader.wait() and done.set(), daemon=True).start()
        assert done.wait(60), "wait() never returned"
        tasks = {downloader.get_task(t).image_id: downloader.get_task(t) for t in task_ids}
        assert set(tasks) == set(ids)
        for image_id, what in ((ids[2], "KeyError"), (ids[5], "RuntimeError")):
            assert tasks[image_id].status == "failed", tasks[image_id]
            assert "could not be planned" in tasks[image_id].error
            assert what in tasks[image_id].error
        assert sum(t.status == "completed" for t in tasks.values()) == len(ids) - 2
    finally:
        downloader.close()
        client.close()
