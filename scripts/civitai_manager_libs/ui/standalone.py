"""The Civitai Gallery tab as a standalone Gradio app: ``python main.py [options]``.

    python main.py [--host H] [--port P] [--output DIR] [--models-dir DIR] [--lang LANG]
                   [--demo] [--no-browser] [--verbose]

``--demo`` starts the bundled local Civitai (``fake_civitai``) and points the app at it, so the
whole tab works offline. Outside WebUI nobody injects ``javascript/*.js`` and ``style.css``: this
module does it, and provides the two helpers WebUI's own script defines (``gradioApp`` and
``onUiLoaded``).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .. import setting
from ..errors import SettingsError
from ..store import confined
from ..util.logging_setup import configure_logging
from ..util.suggest import SuggestingParser

if TYPE_CHECKING:
    import gradio as gr

# Gradio (~3 s to import) is imported when the app is built, not for `python main.py --help`.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home, also offline

logger = logging.getLogger(__name__)

EXTENSION_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
QUEUE_CONCURRENCY = 8

# What WebUI's script.js provides to extension scripts, for the standalone page.
_HELPERS_JS = """
if (typeof window.gradioApp !== 'function') {
    window.gradioApp = function () {
        const app = document.querySelector('gradio-app');
        if (!app) return document;
        return app.shadowRoot ? app.shadowRoot : app;
    };
}
if (typeof window.onUiLoaded !== 'function') {
    window.__civitaiUiLoaded = [];
    window.onUiLoaded = function (callback) { window.__civitaiUiLoaded.push(callback); };
}
"""
_RUN_CALLBACKS_JS = """
(window.__civitaiUiLoaded || []).splice(0).forEach(function (callback) {
    try { callback(); } catch (error) { console.error('onUiLoaded callback failed', error); }
});
"""


#: The standalone page only: toasts at the bottom, where they cover no button of the tab (the
#: tab starts at the top of this page; inside WebUI, WebUI's own placement is left alone).
APP_CSS = """
.toast-wrap { top: auto !important; bottom: var(--size-4, 16px) !important; }
"""


def extension_css() -> str:
    """The content of ``style.css`` at the extension root ("" when absent), and the page's own
    rules."""
    path = os.path.join(EXTENSION_ROOT, "style.css")
    if not os.path.isfile(path):
        return APP_CSS
    with open(path, "r", encoding="utf-8") as handle:
        return handle.read() + APP_CSS


def extension_js() -> str:
    """A JavaScript function expression that defines the helpers, runs every
    ``javascript/*.js`` and then the ``onUiLoaded`` callbacks (Gradio runs it on page load)."""
    parts: List[str] = [_HELPERS_JS]
    for path in sorted(glob.glob(os.path.join(EXTENSION_ROOT, "javascript", "*.js"))):
        with open(path, "r", encoding="utf-8") as handle:
            parts.append(f"// {os.path.basename(path)}\n{handle.read()}")
    parts.append(_RUN_CALLBACKS_JS)
    return "() => {\n" + "\n".join(parts) + "\nreturn [];\n}"


def build_app() -> gr.Blocks:
    """The standalone page: the Civitai Gallery tab, its styles and scripts."""
    import gradio as gr

    from .gradio_compat import blocks, listen
    from .tab import TAB_ID, TAB_TITLE, build_tab_contents

    css = extension_css()
    with blocks(title=TAB_TITLE, css=css, analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab(TAB_TITLE, elem_id=TAB_ID):
                build_tab_contents(webui=False)
        listen(demo.load, None, None, None, js=extension_js())
    return demo


@dataclass
class RunningApp:
    """A launched app (``prevent_thread_lock``): its URL and how to stop it."""

    demo: gr.Blocks
    url: str

    def close(self) -> None:
        """Stop serving. Connections a browser still holds open are not waited for: Gradio 3's
        server would wait for them forever (no graceful-shutdown timeout); no handler of ours is
        running by then."""
        server = getattr(self.demo, "server", None)
        if server is not None and hasattr(server, "force_exit"):
            server.force_exit = True
        self.demo.close()


def _served_paths() -> List[str]:
    paths = []
    for key in ("gallery_cache_path", "images.output_path"):
        path = os.path.abspath(str(setting.get(key)))
        confined.ensure_root(path)
        paths.append(path)
    return paths


def launch(
    host: str = DEFAULT_HOST,
    port: Optional[int] = None,
    open_browser: bool = False,
    block: bool = True,
) -> RunningApp:
    """Build, queue and launch the app. With ``block=False`` it serves from background threads."""
    from .gradio_compat import enable_queue, gradio_major, launch_kwargs

    demo = build_app()
    enable_queue(demo, QUEUE_CONCURRENCY)
    options: Dict[str, Any] = dict(
        server_name=host,
        server_port=port,
        inbrowser=open_browser,
        prevent_thread_lock=not block,
        allowed_paths=_served_paths(),
        show_error=True,
        quiet=not block,
    )
    if gradio_major() >= 6:  # 6.x reads css from launch(); earlier lines from Blocks(css=)
        options["css"] = extension_css()
    demo.launch(**launch_kwargs(demo, **options))
    url = getattr(demo, "local_url", None) or f"http://{host}:{port}/"
    return RunningApp(demo, url)


def parse_args(argv: Optional[List[str]], commands_help: str = "") -> argparse.Namespace:
    """The app's options; ``commands_help`` (from ``main.py``): the headless commands, for
    ``--help``."""
    parser = SuggestingParser(
        prog="python main.py",
        usage="%(prog)s [--host H] [--port P] [--output DIR] [--models-dir DIR] [--lang LANG]\n"
        "       %(prog)s [--demo] [--no-browser] [-v]\n"
        "       %(prog)s COMMAND [options]   (the commands below)",
        description="Civitai Gallery: browse Civitai images and download them with their "
        "generation data.\nWithout a command it serves the gallery tab in your browser; with "
        "one of the\ncommands below it works headless.",
        epilog=commands_help or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to serve on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
        help="port to serve on (default %(default)s)",
    )
    parser.add_argument("--output", metavar="DIR", help="folder for downloaded images")
    parser.add_argument(
        "--models-dir",
        metavar="DIR",
        help="WebUI-style models folder (Stable-diffusion/, Lora/, embeddings/, VAE/) where the "
        "Resources panel finds and stores an image's models (the setting models_path)",
    )
    parser.add_argument(
        "--lang",
        metavar="LANG",
        help="language of the tab: en, zh_TW, zh_CN, ja_JP or ko_KR (the setting ui_language; "
        "the commands stay English)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="start the bundled local Civitai and use it (works offline)",
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _start_demo_civitai():
    from ..fake_civitai import FakeCivitai

    fake = FakeCivitai(split_fronts=True)  # both fronts, as Civitai runs them
    fake.start()
    for name in ("CIVITAI_BASE_URL", "CIVITAI_RED_BASE_URL"):
        if os.environ.get(name):
            logger.warning("--demo: ignoring %s=%s", name, os.environ.pop(name))
    setting.set("civitai_base_url", fake.base_url)
    setting.set("civitai_red_base_url", fake.red_base_url)
    # the environment outranks set(): keep both
    os.environ["CIVITAI_BASE_URL"] = fake.base_url
    os.environ["CIVITAI_RED_BASE_URL"] = fake.red_base_url
    os.environ["CIVITAI_VIDEO_BASE_URL"] = fake.video_base_url  # videos from its video host
    return fake


def main(argv: Optional[List[str]] = None, commands_help: str = "") -> int:
    args = parse_args(argv, commands_help)
    configure_logging(verbose=args.verbose)
    try:
        setting.load()
        if args.output:
            setting.set("images.output_path", os.path.abspath(args.output))
        if args.models_dir:
            setting.set("models_path", os.path.abspath(os.path.expanduser(args.models_dir)))
        if args.lang:
            setting.set("ui_language", args.lang)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fake = _start_demo_civitai() if args.demo else None
    try:
        if fake is not None:
            example = fake.dataset.models[0]
            print(
                f"Demo mode: the local Civitai runs at {fake.base_url} (its mature front at "
                f"{fake.red_base_url}); enter {example.id} "
                f"(the model '{example.name}') in the Civitai Gallery tab and press Load."
            )
        print(f"Images are saved in {os.path.abspath(setting.get('images.output_path'))}")
        launch(args.host, args.port, open_browser=not args.no_browser, block=True)
    except KeyboardInterrupt:
        pass
    finally:
        if fake is not None:
            fake.stop()
    return 0
