#!/usr/bin/env python3
"""Download benchmark against the local fake Civitai: prints a table (not a unit test).

    python bench/bench.py          # full run: 200 x 200 KiB, 1 GiB stream, 1,000 / 10,000 images
    python bench/bench.py --quick    # a small run to check the script itself (~1 min)

Sections:
1. Throughput, 100 ms latency per request and a bandwidth cap: the "before" path (a sequential
   ``requests.get(stream=True)`` + ``shutil.copyfileobj`` loop), ours (ImageDownloader with json
   metadata) at concurrency 1, 3, 5, 8, ``aria2c -j5`` on the same URL list, each against the ideal
   bound ``n x latency / c + bytes / bandwidth`` (see ``ideal_seconds`` for the bandwidth model).
2. Peak RSS growth while streaming a 1 GiB generated body (ours vs the before path), and during a
   1,000-image CLI run; RSS is sampled from the parent with psutil every 10 ms.
3. API requests to list 1,000 and 10,000 images; time and image requests to re-run a finished
   1,000-image job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

MiB = 1024 * 1024
ALL_LEVELS = ["None", "Soft", "Mature", "X"]


# --------------------------------------------------------------------------- helpers


@dataclass
class Row:
    name: str
    seconds: float
    ok: int
    total: int
    ideal: Optional[float] = None
    baseline: Optional[float] = None

    def cells(self) -> List[str]:
        ratio = f"{self.seconds / self.ideal:.2f}x" if self.ideal else "-"
        speed = f"{self.baseline / self.seconds:.2f}x" if self.baseline else "-"
        ideal = f"{self.ideal:.2f}" if self.ideal else "-"
        return [self.name, f"{self.seconds:.2f}", ideal, ratio, speed, f"{self.ok}/{self.total}"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for text in fh:
                if text.startswith("model name"):
                    cpu = text.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    mem = psutil.virtual_memory().total / 1024**3
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def set_fake_nodelay(enabled: bool) -> None:
    """TCP_NODELAY on the fake's sockets in this process (the fake's default, as nginx and CDNs
    ``tcp_nodelay on``); ``--no-nodelay`` turns it off to show the delayed-ACK stall (~40 ms per
    kept-alive response) that the fake's separate header and body writes meet without it."""
    from scripts.civitai_manager_libs.fake_civitai import server

    server._Handler.disable_nagle_algorithm = enabled


def ideal_seconds(n: int, total_bytes: int, latency: float, bandwidth: float, c: int) -> float:
    """The issue's bound ``n x latency / c + bytes / bandwidth``: every request waits its latency
    (c at a time) and all bodies share one link of ``bandwidth`` bytes/s (the fake's
    ``total_bandwidth``, one cap across every concurrent response)."""
    return n * latency / c + total_bytes / bandwidth


def list_urls(fake, model_id: int) -> List[str]:
    """The image URL list (listed once with our API client; not part of any timing)."""
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    with CivitaiHttpClient(base_url=fake.base_url, api_key="") as client:
        api = CivitaiAPI(client=client)
        return [item.url for item in api.iter_images({"modelId": model_id}, ALL_LEVELS)]


def count_media(root: str) -> int:
    exts = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
    n = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        n += sum(1 for name in names if name.lower().endswith(exts))
    return n


# --------------------------------------------------------------------------- throughput


def run_baseline(fake, model_id: int, dest: str) -> float:
    """The before path: list with plain requests (cursor loop), then a sequential stream loop."""
    import requests

    start = time.perf_counter()
    urls, cursor = [], None
    while True:
        params = {"modelId": model_id, "limit": 200, "nsfw": "X", "withMeta": "true"}
        if cursor:
            params["cursor"] = cursor
        body = requests.get(fake.base_url + "/api/v1/images", params=params, timeout=30).json()
        urls += [item["url"] for item in body["items"]]
        cursor = body.get("metadata", {}).get("nextCursor")
        if not cursor:
            break
    for url in urls:
        img_r = requests.get(url, stream=True, timeout=30)
        if not img_r.ok:
            continue
        img_r.raw.decode_content = True
        with open(os.path.join(dest, url.rsplit("/", 1)[-1]), "wb") as fh:
            shutil.copyfileobj(img_r.raw, fh)
        img_r.close()
    return time.perf_counter() - start


def run_ours(fake, model_id: int, dest: str, concurrency: int) -> float:
    from scripts.civitai_manager_libs import setting
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.engine.pool import DownloadEngine
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader

    setting.update({"images.metadata_format": "json", "images.save_metadata": True})
    client = CivitaiHttpClient(base_url=fake.base_url, api_key="", pool_size=concurrency)
    engine = DownloadEngine(client=client, max_workers=concurrency)
    downloader = ImageDownloader(
        api_client=CivitaiAPI(client=client), download_engine=engine, output_path=dest
    )
    try:
        start = time.perf_counter()
        ids = downloader.download_model_images(model_id, nsfw_levels=ALL_LEVELS)
        downloader.wait(ids)
        elapsed = time.perf_counter() - start
        summary = downloader.summary(ids)
        if summary.failed:
            print(f"  ours c={concurrency}: {summary.failed} failed: {summary.failures[:3]}")
        return elapsed
    finally:
        downloader.close()
        client.close()


def run_timed(cmd: List[str], timeout: float = 600, **popen) -> Tuple[float, float]:
    """Run ``cmd`` to its end; ``(start, end)`` wall-clock times. The end is exact: a blocking
    wait, with a timer that kills the process after ``timeout`` seconds. (``subprocess.run`` with
    a timeout polls with sleeps growing to 50 ms, so it saw a process end up to 50 ms late.)"""
    start = time.time()
    proc = subprocess.Popen(cmd, **popen)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        code = proc.wait()
    finally:
        killer.cancel()
    end = time.time()
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    return start, end


def run_aria2(urls: List[str], dest: str, jobs: int = 5) -> Optional[float]:
    aria2c = shutil.which("aria2c")
    if not aria2c:
        return None
    listing = os.path.join(dest, "urls.txt")
    with open(listing, "w", encoding="utf-8") as fh:
        for url in urls:
            fh.write(url + "\n")
    cmd = [aria2c, f"-j{jobs}", "-x1", "-s1", "-i", listing, "-d", dest, "--quiet=true"]
    cmd += ["--file-allocation=none", "--allow-overwrite=true", "--auto-file-renaming=false"]
    start, end = run_timed(cmd)
    os.unlink(listing)
    return end - start


class RemoteFake:
    """A FakeCivitai in its own process, so the server never competes with the client being
    measured for the GIL (the real Civitai is not inside our process either)."""

    def __init__(self, n: int, image_kb: int, latency: float, bandwidth: int, nodelay: bool):
        self.cmd = [sys.executable, __file__, "--child-fake", str(n), str(image_kb)]
        self.cmd += [str(latency), str(bandwidth), "1" if nodelay else "0"]

    def __enter__(self) -> "RemoteFake":
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        fields = dict(self.proc.stdout.readline().split() for _ in range(2))
        self.base_url, self.model_id = fields["BASE"], int(fields["MODEL"])
        return self

    def take_log(self) -> List[dict]:
        """The requests the fake saw since the last call (and forget them)."""
        self.proc.stdin.write("LOG\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def child_fake(n: str, image_kb: str, latency: str, bandwidth: str, nodelay: str) -> int:
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    set_fake_nodelay(nodelay == "1")
    dataset = Dataset.generate(n_images=int(n), image_kb=int(image_kb), seed=1)
    with FakeCivitai(dataset, latency=float(latency), total_bandwidth=float(bandwidth)) as fake:
        print("BASE", fake.base_url, flush=True)
        print("MODEL", dataset.models[0].id, flush=True)
        for command in sys.stdin:  # until the parent closes our stdin
            if command.strip() == "LOG":  # the requests since the last LOG, as one JSON line
                records = [
                    {
                        "time": r.time,
                        "end": r.end_time,
                        "server": r.server,
                        "path": r.path,
                        "query": r.raw_query,
                        "status": r.status,
                        "connection": r.connection_id,
                    }
                    for r in fake.log
                ]
                fake.reset()
                print(json.dumps(records), flush=True)
    return 0


def throughput(
    n: int, image_kb: int, latency: float, bandwidth: int, work: str, nodelay: bool
) -> List[Row]:
    rows: List[Row] = []
    with RemoteFake(n, image_kb, latency, bandwidth, nodelay) as fake:
        model_id = fake.model_id
        urls = list_urls(fake, model_id)
        total_bytes = n * image_kb * 1024

        def fresh(name: str) -> str:
            path = os.path.join(work, name)
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
            return path

        folder = fresh("baseline")
        base = run_baseline(fake, model_id, folder)
        rows.append(
            Row(
                "sequential requests loop",
                base,
                count_media(folder),
                n,
                ideal_seconds(n, total_bytes, latency, bandwidth, 1),
                base,
            )
        )
        for c in (1, 3, 5, 8):
            folder = fresh(f"ours-c{c}")
            secs = run_ours(fake, model_id, folder, c)
            rows.append(
                Row(
                    f"ours, concurrency {c} (+json)",
                    secs,
                    count_media(folder),
                    n,
                    ideal_seconds(n, total_bytes, latency, bandwidth, c),
                    base,
                )
            )
        folder = fresh("aria2c")
        secs = run_aria2(urls, folder, 5)
        if secs is not None:
            rows.append(
                Row(
                    "aria2c -j5 -i urls.txt",
                    secs,
                    count_media(folder),
                    n,
                    ideal_seconds(n, total_bytes, latency, bandwidth, 5),
                    base,
                )
            )
        for c in (1, 5):
            ideal = ideal_seconds(n, total_bytes, latency, bandwidth, c)
            rows.append(Row(f"ideal bound, c={c}", ideal, n, n, ideal, base))
    return rows


# --------------------------------------------------------------------------- whole process


@dataclass
class WholeRun:
    seconds: float  # process start -> exit
    first_request: float  # process start -> first request the server saw
    api_requests: int
    repeated_api: int  # API requests identical (path + query) to an earlier one in the run
    page_to_image: float  # first listing page answered -> first image request
    download_phase: float  # first image request -> last image byte
    exit_after: float  # last image byte -> process exit
    files: int


def run_cli_process(fake, model_id: int, dest: str, concurrency: int) -> WholeRun:
    """``python main.py download model M`` as a user runs it, timed from spawn to exit; the
    server's log tells where the time went."""
    env = dict(os.environ, CIVITAI_BASE_URL=fake.base_url)
    env["CIVITAI_GALLERY_SETTINGS"] = os.path.join(dest, "no-settings.json")
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "download", "model", str(model_id)]
    cmd += ["--output", dest, "--concurrency", str(concurrency), "--metadata", "json", "--quiet"]
    start, end = run_timed(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    seconds = end - start
    log = fake.take_log()
    api = [r for r in log if r["server"] == "api"]
    keys = [(r["path"], r["query"]) for r in api]
    images = [r for r in log if r["server"] == "image"]
    listing = [r for r in api if r["path"] == "/api/v1/images"]
    first_page_end = min(r["end"] for r in listing) if listing else start
    first_image = min(r["time"] for r in images) if images else start
    return WholeRun(
        seconds=seconds,
        first_request=min(r["time"] for r in log) - start,
        api_requests=len(api),
        repeated_api=len(keys) - len(set(keys)),
        page_to_image=first_image - first_page_end,
        download_phase=(max(r["end"] for r in images) - first_image) if images else 0.0,
        exit_after=(end - max(r["end"] for r in images)) if images else 0.0,
        files=count_media(dest),
    )


def minimal_client_phase(fake, urls: List[str], concurrency: int) -> float:
    """Seconds from the first image request to the last byte for the leanest client: urllib3
    alone, ``concurrency`` threads, bodies read and thrown away (no file, no hash, no check).
    What this server allows any client's download phase."""
    import queue

    import urllib3

    pool = urllib3.PoolManager(maxsize=concurrency)
    todo: "queue.Queue[str]" = queue.Queue()
    for url in urls:
        todo.put(url)

    def worker() -> None:
        while True:
            try:
                url = todo.get_nowait()
            except queue.Empty:
                return
            response = pool.request("GET", url, preload_content=False)
            while response.read(256 * 1024):
                pass
            response.release_conn()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pool.clear()
    images = [r for r in fake.take_log() if r["server"] == "image"]
    return max(r["end"] for r in images) - min(r["time"] for r in images)


def first_request_floor(fake, code: str) -> float:
    """Seconds from spawning ``python -c code`` to the first request the fake saw: what the
    interpreter and ``import requests`` cost any Python tool on this machine."""
    start, _ = run_timed([sys.executable, "-c", code], timeout=60)
    log = fake.take_log()
    return min(r["time"] for r in log) - start


def compile_bytecode() -> None:
    """Compile the package as a user's first run leaves it (``__pycache__``): with
    PYTHONDONTWRITEBYTECODE set, every measured run would compile ~50 modules from source."""
    import compileall

    compileall.compile_dir(os.path.join(REPO, "scripts"), quiet=1)
    compileall.compile_file(os.path.join(REPO, "main.py"), quiet=1)


def whole_process(
    n: int, image_kb: int, latency: float, work: str, rounds: int = 3, concurrency: int = 5
) -> Tuple[List[List[str]], Dict[str, float]]:
    """The CLI's whole process against ``aria2c -j5`` on the same URLs, alternately, ``rounds``
    times (medians). aria2c gets its URL list for free; we list first."""
    compile_bytecode()
    with RemoteFake(n, image_kb, latency, 0, True) as fake:
        urls = list_urls(fake, fake.model_id)
        fake.take_log()
        ours: List[WholeRun] = []
        aria: List[float] = []
        floor: List[float] = []
        aria_phase: List[float] = []
        lean: List[float] = []
        get = f"import requests; requests.get({fake.base_url + '/api/v1/models/1'!r})"
        for i in range(rounds):
            floor.append(first_request_floor(fake, get))
            lean.append(minimal_client_phase(fake, urls, concurrency))
            folder = os.path.join(work, f"whole-{i}")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            ours.append(run_cli_process(fake, fake.model_id, folder, concurrency))
            folder = os.path.join(work, f"aria-{i}")
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
            secs = run_aria2(urls, folder, concurrency)
            images = [r for r in fake.take_log() if r["server"] == "image"]
            if secs is not None:
                aria.append(secs)
            if images:  # aria2c's own download phase: first image request -> last byte
                aria_phase.append(max(r["end"] for r in images) - min(r["time"] for r in images))
    bound = n * latency / concurrency
    med = statistics.median
    figures = {
        "ours": med(r.seconds for r in ours),
        "aria2c": med(aria) if aria else float("nan"),
        "bound": bound,
        "first_request_ms": med(r.first_request for r in ours) * 1000,
        "api_requests": med(r.api_requests for r in ours),
        "repeated_api": max(r.repeated_api for r in ours),
        "page_to_image_ms": med(r.page_to_image for r in ours) * 1000,
        "download_phase": med(r.download_phase for r in ours),
        "exit_ms": med(r.exit_after for r in ours) * 1000,
        "aria_phase": med(aria_phase) if aria_phase else float("nan"),
        "lean_phase": med(lean),
        "floor_ms": med(floor) * 1000,
    }
    rows = [
        [
            f"ours round {i + 1}",
            f"{r.seconds:.2f}",
            f"{r.first_request * 1000:.0f}",
            str(r.api_requests),
            str(r.repeated_api),
            f"{r.page_to_image * 1000:.1f}",
            f"{r.download_phase:.2f}",
            f"{r.exit_after * 1000:.0f}",
            f"{r.files}/{n}",
        ]
        for i, r in enumerate(ours)
    ]
    rows += [
        [f"aria2c round {i + 1}", f"{secs:.2f}", "-", "-", "-", "-", f"{phase:.2f}", "-", "-"]
        for i, (secs, phase) in enumerate(zip(aria, aria_phase))
    ]
    rows += [
        [f"`import requests; get` round {i + 1}", "-", f"{secs * 1000:.0f}"] + ["-"] * 6
        for i, secs in enumerate(floor)
    ]
    rows += [
        [f"urllib3 alone, bodies dropped, round {i + 1}"] + ["-"] * 5 + [f"{secs:.2f}", "-", "-"]
        for i, secs in enumerate(lean)
    ]
    return rows, figures


# --------------------------------------------------------------------------- memory


def peak_rss_of(cmd: List[str], timeout: float = 900) -> tuple:
    """Run ``cmd`` (a child that prints READY once imported, then waits for a line on stdin);
    returns (rss at READY, peak rss, seconds from GO to exit): sampled every 10 ms and checked
    against the child's ru_maxrss."""
    import psutil

    proc = subprocess.Popen(
        cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    ready, _, ready_maxrss = proc.stdout.readline().strip().partition(" ")
    if ready != "READY":
        proc.kill()
        raise RuntimeError(f"child did not start: {ready!r}")
    child = psutil.Process(proc.pid)
    base = child.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], child.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    proc.stdin.write("GO\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=timeout)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {out[-500:]}")
    # Cross-check with the kernel's high-water mark, which no sampling interval can miss: when
    # the run raised it above its value at READY, that new mark is the run's peak.
    for line in out.splitlines():
        if line.startswith("MAXRSS ") and int(line.split()[1]) > int(ready_maxrss or 0):
            peak[0] = max(peak[0], int(line.split()[1]) * 1024)
    return base, peak[0], elapsed


def child_stream(mode: str, url: str, path: str) -> int:
    """Child process: stream ``url`` to ``path`` with ``mode`` ours|baseline."""
    import requests

    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    client = CivitaiHttpClient(api_key="", max_retries=0)
    print("READY", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    sys.stdin.readline()
    if mode == "ours":
        client.fetch_to_file(url, path)
    else:
        with requests.get(url, stream=True, timeout=60) as resp:
            resp.raw.decode_content = True
            with open(path, "wb") as fh:
                shutil.copyfileobj(resp.raw, fh)
    if os.path.exists(path):
        os.unlink(path)
    print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    return 0


def child_cli(argv: List[str]) -> int:
    from scripts.civitai_manager_libs.cli import command as cli

    # Import what a run loads before READY, so "growth" is the run's data, not module code.
    from scripts.civitai_manager_libs.store import archive  # noqa: F401
    from scripts.civitai_manager_libs import image_downloader  # noqa: F401
    from scripts.civitai_manager_libs.metadata import record as metadata  # noqa: F401
    from scripts.civitai_manager_libs import http_client  # noqa: F401
    from scripts.civitai_manager_libs.metadata import thumbnails  # noqa: F401

    print("READY", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    sys.stdin.readline()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        code = cli.main(argv, out=sink)
    print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    return code


def memory_stream(size: int, work: str) -> List[List[str]]:
    from scripts.civitai_manager_libs.fake_civitai import FakeCivitai

    rows = []
    with FakeCivitai() as fake:
        url = fake.blob_url(size, kind="mp4")
        for mode in ("baseline", "ours"):
            target = os.path.join(work, f"blob-{mode}.mp4")
            cmd = [sys.executable, __file__, "--child-stream", mode, url, target]
            base, peak, secs = peak_rss_of(cmd)
            rows.append(
                [
                    f"{mode}: stream {size / MiB:.0f} MiB",
                    f"{base / MiB:.1f}",
                    f"{peak / MiB:.1f}",
                    f"{(peak - base) / MiB:.1f}",
                    f"{size / MiB / secs:.0f} MiB/s",
                ]
            )
    return rows


# --------------------------------------------------------------------------- scale


def listing_requests(sizes: Sequence[int]) -> List[List[str]]:
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    rows = []
    for n in sizes:
        dataset = Dataset.generate(n_images=n, image_kb=1, seed=2)
        with FakeCivitai(dataset=dataset) as fake, CivitaiHttpClient(
            base_url=fake.base_url, api_key=""
        ) as client:
            start = time.perf_counter()
            listed = sum(
                1
                for _ in CivitaiAPI(client).iter_images(
                    {"modelId": dataset.models[0].id}, ALL_LEVELS
                )
            )
            secs = time.perf_counter() - start
            rows.append(
                [f"list {n:,} images", str(listed), str(len(fake.api_requests())), f"{secs:.2f}"]
            )
    return rows


def big_run_and_rerun(n: int, image_kb: int, latency: float, work: str):
    """RSS during an n-image CLI run, then the re-run of the finished job (time, image requests)."""
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    dataset = Dataset.generate(n_images=n, image_kb=image_kb, seed=3)
    output = os.path.join(work, f"run{n}")
    shutil.rmtree(output, ignore_errors=True)
    with FakeCivitai(dataset=dataset, latency=latency) as fake:
        argv = [
            "download",
            "model",
            str(dataset.models[0].id),
            "--base-url",
            fake.base_url,
            "--output",
            output,
            "--nsfw",
            "all",
            "--concurrency",
            "5",
            "-q",
        ]
        base, peak, secs = peak_rss_of([sys.executable, __file__, "--child-cli", *argv])
        saved = count_media(output)
        fake.reset()
        start = time.perf_counter()
        rerun = subprocess.run(
            [sys.executable, os.path.join(REPO, "main.py"), *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        rerun_secs = time.perf_counter() - start
        rerun_images = len(fake.image_requests())
        rerun_api = len(fake.api_requests())
    rss = [
        f"CLI run of {n:,} images",
        f"{base / MiB:.1f}",
        f"{peak / MiB:.1f}",
        f"{(peak - base) / MiB:.1f}",
        f"{saved}/{n} in {secs:.1f} s",
    ]
    # piped, the CLI prints saved paths on stdout and its summary line on stderr
    last = (rerun.stderr.strip().splitlines() or ["?"])[-1]
    return rss, [
        f"re-run finished {n:,}-image job",
        f"{rerun_secs:.2f}",
        str(rerun_images),
        str(rerun_api),
        last,
    ]


# --------------------------------------------------------------------------- main


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request (0.1)")
    parser.add_argument(
        "--bandwidth", type=float, default=40.0, help="MiB/s shared by all responses (40)"
    )
    parser.add_argument("--work", help="scratch folder (default: a temp dir, removed after)")
    parser.add_argument(
        "--only",
        choices=("throughput", "whole", "memory", "scale"),
        help="run one section only",
    )
    parser.add_argument(
        "--no-nodelay",
        action="store_true",
        help="run the fake without TCP_NODELAY (shows the delayed-ACK stall it avoids)",
    )
    parser.add_argument("--child-stream", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--child-fake", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_stream:
        return child_stream(*args.child_stream)
    if args.child_cli:
        return child_cli(args.child_cli)
    if args.child_fake:
        return child_fake(*args.child_fake)

    import logging

    logging.basicConfig(level=logging.WARNING)
    set_fake_nodelay(not args.no_nodelay)  # the in-process fakes; RemoteFake gets it as an arg
    n, kb = (40, 100) if args.quick else (200, 200)
    stream_size = (128 if args.quick else 1024) * MiB
    big = 200 if args.quick else 1000
    sizes = (1000,) if args.quick else (1000, 10000)
    bandwidth = int(args.bandwidth * MiB)
    work = args.work or tempfile.mkdtemp(prefix="civitai-bench-")
    os.environ.setdefault("CIVITAI_GALLERY_SETTINGS", os.path.join(work, "settings.json"))
    sections = [args.only] if args.only else ["throughput", "whole", "memory", "scale"]
    checks = []
    try:
        print(f"machine: {machine()}")
        if "throughput" in sections:
            print(
                f"fake Civitai (own process): latency {args.latency * 1000:.0f} ms per request, "
                f"{args.bandwidth:g} MiB/s link shared by all responses; {n} images x {kb} KiB\n"
            )
            rows = throughput(n, kb, args.latency, bandwidth, work, not args.no_nodelay)
            headers = ["run", "seconds", "ideal s", "vs ideal", "speedup vs loop", "files"]
            print(table(headers, [r.cells() for r in rows]) + "\n")
            c5 = {r.name: r for r in rows}["ours, concurrency 5 (+json)"]
            checks.append(("speedup at c=5 >= 4x", c5.baseline / c5.seconds >= 4.0))
            checks.append(("c=5 within 1.15x of ideal", c5.seconds / c5.ideal <= 1.15))
        if "whole" in sections:
            wn = 40 if args.quick else 200
            print(
                f"whole process: `python main.py download model M --concurrency 5 --metadata json` "
                f"vs `aria2c -j5` on the same {wn} URLs, alternately, 3 rounds; latency "
                f"{args.latency * 1000:.0f} ms per request, no bandwidth cap; the package's "
                "bytecode compiled first (as a user's first run leaves it)\n"
            )
            rows, fig = whole_process(wn, kb, args.latency, work)
            headers = ["run", "seconds", "first request ms", "API requests", "repeated API"]
            headers += ["page -> first image ms", "download phase s", "last byte -> exit ms"]
            headers += ["files"]
            print(table(headers, rows) + "\n")
            print(
                f"medians: ours {fig['ours']:.2f} s, aria2c {fig['aria2c']:.2f} s, bound "
                f"{fig['bound']:.2f} s -> ours/aria2c {fig['ours'] / fig['aria2c']:.3f}, "
                f"ours/bound {fig['ours'] / fig['bound']:.3f}, download phase/bound "
                f"{fig['download_phase'] / fig['bound']:.3f} (aria2c's "
                f"{fig['aria_phase'] / fig['bound']:.3f}, urllib3 alone with bodies dropped "
                f"{fig['lean_phase'] / fig['bound']:.3f}); start-up to first request "
                f"{fig['first_request_ms']:.0f} ms (a bare `import requests; requests.get()` "
                f"process: {fig['floor_ms']:.0f} ms); {fig['api_requests']:.0f} API requests "
                f"({fig['repeated_api']} repeated); page -> first image "
                f"{fig['page_to_image_ms']:.1f} ms; last byte -> exit {fig['exit_ms']:.0f} ms\n"
            )
            checks.append(("whole process <= 1.0x aria2c", fig["ours"] <= fig["aria2c"]))
            checks.append(("no API request repeated", fig["repeated_api"] == 0))
            checks.append(("start-up to first request <= 60 ms", fig["first_request_ms"] <= 60))
            checks.append(
                ("download phase <= 1.03x bound", fig["download_phase"] <= 1.03 * fig["bound"])
            )
        if "memory" in sections:
            mem = memory_stream(stream_size, work)
            rss, rerun = big_run_and_rerun(big, 16, 0.0, work)
            headers = ["memory", "RSS at start MiB", "peak MiB", "growth MiB", "note"]
            print(table(headers, mem + [rss]) + "\n")
            headers = ["re-run", "seconds", "image requests", "API requests", "CLI last line"]
            print(table(headers, [rerun]) + "\n")
            checks.append(("stream RSS growth <= 32 MiB", float(mem[-1][3]) <= 32.0))
            checks.append(("re-run makes 0 image requests", rerun[2] == "0"))
        if "scale" in sections:
            rows = listing_requests(sizes)
            print(table(["listing", "images", "API requests", "seconds"], rows) + "\n")
        for name, ok in checks:
            print(f"target {name}: {'met' if ok else 'NOT met'}")
        return 0
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
