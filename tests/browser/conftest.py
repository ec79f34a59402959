"""Browser-suite harness: Debian's chromium (never `playwright install`), the standalone app served
in-process on a free port against a local Civitai, and every non-local request routed away.

The app runs in this process (``standalone.launch(block=False)``) so tests can set faults on the
fake Civitai and point the settings at fresh folders; the subprocess test of ``main.py --demo``
covers the real entry point.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import gradio
import pytest
from playwright.sync_api import Error as PlaywrightError

from scripts.civitai_manager_libs import setting

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "artifacts",
    f"gradio-{gradio.__version__}",  # one folder per Gradio line of the matrix
)
UI_TIMEOUT_MS = 30_000


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed test, save the page as tests/artifacts/<test>-FAILED.png for the CI log."""
    outcome = yield
    report = outcome.get_result()
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and page is not None:
        os.makedirs(ARTIFACTS, exist_ok=True)
        name = getattr(item, "originalname", None) or item.name
        try:
            page.screenshot(path=os.path.join(ARTIFACTS, f"{name}-FAILED.png"), full_page=True)
        except PlaywrightError as exc:  # a crashed page must not hide the real failure
            report.sections.append(("failure screenshot", str(exc)))


@pytest.fixture(scope="session", autouse=True)
def _fresh_failure_screenshots():
    """Drop the failure screenshots of an earlier run so the folder shows only this run's."""
    if os.path.isdir(ARTIFACTS):
        for name in os.listdir(ARTIFACTS):
            if name.endswith("-FAILED.png"):
                os.remove(os.path.join(ARTIFACTS, name))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
        "headless": True,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def session_fake():
    """One local Civitai for the browser session (faults are reset before every test)."""
    from scripts.civitai_manager_libs.fake_civitai import FakeCivitai

    with FakeCivitai() as fake:
        yield fake


@pytest.fixture(scope="session")
def gallery_server(session_fake, tmp_path_factory):
    """The standalone app, served in-process against ``session_fake``."""
    from scripts.civitai_manager_libs.ui import standalone

    saved_env = os.environ.pop("CIVITAI_BASE_URL", None)
    root = tmp_path_factory.mktemp("gallery-app")
    saved_settings = os.environ.get("CIVITAI_GALLERY_SETTINGS")
    os.environ["CIVITAI_GALLERY_SETTINGS"] = str(root / "settings.json")  # the tab saves options
    setting.reset()
    setting.update(
        {
            "civitai_base_url": session_fake.base_url,
            "gallery_cache_path": str(root / "cache"),
            "images.output_path": str(root / "images"),
        }
    )
    app = standalone.launch("127.0.0.1", free_port(), open_browser=False, block=False)
    try:
        yield app
    finally:
        app.close()
        setting.reset()
        if saved_env is not None:
            os.environ["CIVITAI_BASE_URL"] = saved_env
        if saved_settings is None:
            os.environ.pop("CIVITAI_GALLERY_SETTINGS", None)
        else:
            os.environ["CIVITAI_GALLERY_SETTINGS"] = saved_settings


def _read(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(autouse=True)
def _saved_settings_do_not_leak(request):
    """Each test starts from the same settings file: what a test saves through the tab (into the
    shared app's file) is undone after it, since the CLI runs of later tests read that file in
    this process (the Library test once searched the folder an earlier test had saved)."""
    if "gallery_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("gallery_server")
    path = setting.settings_path()
    before = _read(path)
    yield
    if _read(path) == before:
        return
    if before is None:
        os.remove(path)
    else:
        with open(path, "wb") as handle:
            handle.write(before)


@pytest.fixture(scope="session")
def base_url(gallery_server):
    return gallery_server.url


@pytest.fixture
def output_dir(gallery_server, tmp_path):
    """A fresh download folder per test (the app picks it up through the settings)."""
    folder = tmp_path / "images"
    setting.set("images.output_path", str(folder))
    return folder


@pytest.fixture
def fake(session_fake):
    session_fake.reset()
    session_fake.latency = 0.0
    session_fake.bandwidth = None
    yield session_fake
    session_fake.reset()


def _route_local_only(page, allowed_hosts):
    def handle(route):
        host = urlsplit(route.request.url).hostname or ""
        if host in allowed_hosts:
            route.continue_()
        else:
            route.abort()

    page.route("**/*", handle)


def open_tab(page, base_url):
    """Route ``page`` to local hosts only, open the app and wait for the tab."""
    page.set_default_timeout(UI_TIMEOUT_MS)
    _route_local_only(page, {"127.0.0.1", "localhost"})
    page.goto(base_url)
    page.wait_for_selector("#civitai_gallery_query textarea, #civitai_gallery_query input")
    return page


@pytest.fixture
def gallery(page, base_url, output_dir, fake):
    """The page with the tab loaded; only the app's own host is reachable from the browser."""
    return open_tab(page, base_url)


@pytest.fixture
def open_app():
    """``open_app(page, url)``: route ``page`` to local hosts, open ``url``, wait for the tab."""
    return open_tab


@pytest.fixture
def second_tab(page, base_url):
    """Another browser tab on the app (same context), opened on demand."""
    opened = []

    def make():
        opened.append(open_tab(page.context.new_page(), base_url))
        return opened[-1]

    yield make
    for other in opened:
        other.close()


@pytest.fixture
def shot(request):
    """``shot(page, name)`` saves tests/artifacts/<test>-<name>.png; returns the path."""
    os.makedirs(ARTIFACTS, exist_ok=True)

    def take(page, name: str) -> str:
        test = request.node.originalname or request.node.name
        path = os.path.join(ARTIFACTS, f"{test}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take
