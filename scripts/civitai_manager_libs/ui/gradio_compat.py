"""Run one UI code base on Gradio 3.41 (A1111), 4.4x (Forge) and 5/6 (standalone).

The differences are small and all of the same kind: a keyword argument one line accepts and
another refuses (``show_api`` vs ``api_visibility``, ``_js`` vs ``js``, ``height`` vs
``max_height``, ``css`` on ``Blocks`` vs on ``launch``). Instead of branching on version numbers
everywhere, callers pass what they want and :func:`supported_kwargs` keeps what the installed
signature accepts; the few renames live in one table here.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from typing import Any, Callable, Dict, Tuple

import gradio as gr

logger = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> Tuple[int, int, int]:
    """``"4.44.1"`` -> ``(4, 44, 1)``; suffixes such as ``b1`` or ``.dev0`` are ignored."""
    match = _VERSION_RE.match(text or "")
    if not match:
        raise ValueError(f"not a version number: {text!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def gradio_version() -> Tuple[int, int, int]:
    """The installed Gradio's version as a tuple."""
    return parse_version(getattr(gr, "__version__", "0.0.0"))


def gradio_major() -> int:
    return gradio_version()[0]


@functools.lru_cache(maxsize=None)
def _accepted(callable_obj: Callable) -> Tuple[frozenset, bool]:
    """Keyword names ``callable_obj`` accepts, and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(callable_obj).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: accept everything
        return frozenset(), True
    names = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    return names, var_kw


def accepts(callable_obj: Callable, name: str) -> bool:
    """Whether ``callable_obj`` has a parameter called ``name`` (``**kwargs`` does not count)."""
    return name in _accepted(callable_obj)[0]


def supported_kwargs(callable_obj: Callable, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Keep the keyword arguments the installed ``callable_obj`` declares; log the dropped ones.

    A ``**kwargs`` catch-all does not count as acceptance: Gradio 3 swallows unknown component
    arguments that way and then warns or fails later, so only declared names pass.
    """
    names, _ = _accepted(callable_obj)
    kept = {k: v for k, v in kwargs.items() if k in names}
    dropped = sorted(set(kwargs) - set(kept))
    if dropped:
        logger.debug(
            "gradio %s: %s does not take %s; dropped",
            gr.__version__,
            getattr(callable_obj, "__qualname__", callable_obj),
            ", ".join(dropped),
        )
    return kept


def component(cls: Callable, *args, **kwargs):
    """Create a Gradio component (or layout block) with the arguments this version supports.

    ``max_height`` falls back to ``height`` (Dataframe on 3.x/4.x); ``buttons`` (6.x) and
    ``show_share_button``/``show_download_button`` (3.x-5.x) may both be given: the one the
    installed version knows is used.
    """
    init = cls.__init__
    if "max_height" in kwargs and not accepts(init, "max_height"):
        kwargs.setdefault("height", kwargs.pop("max_height"))
    return cls(*args, **supported_kwargs(init, kwargs))


def listen(trigger: Callable, fn: Callable | None, inputs=None, outputs=None, **kwargs):
    """Attach ``fn`` to an event (``button.click``, ``gallery.select``, ``demo.load``).

    ``js`` becomes ``_js`` on Gradio 3; ``show_api=False`` becomes ``api_visibility="private"``
    where that is the spelling; unknown arguments are dropped.
    """
    if "js" in kwargs and not accepts(trigger, "js") and accepts(trigger, "_js"):
        kwargs["_js"] = kwargs.pop("js")
    if "show_api" in kwargs and not accepts(trigger, "show_api"):
        show = kwargs.pop("show_api")
        if accepts(trigger, "api_visibility"):
            kwargs["api_visibility"] = "public" if show else "private"
    return trigger(fn, inputs, outputs, **supported_kwargs(trigger, kwargs))


def update(**kwargs):
    """``gr.update`` exists on every supported line; this keeps the call sites uniform."""
    return gr.update(**kwargs)


def blocks(**kwargs) -> gr.Blocks:
    """``gr.Blocks`` with the arguments this version takes (``css`` is ignored by 6.x Blocks)."""
    if gradio_major() >= 6:
        kwargs.pop("css", None)
    return gr.Blocks(**supported_kwargs(gr.Blocks.__init__, kwargs))


def enable_queue(demo: gr.Blocks, concurrency: int = 4) -> gr.Blocks:
    """Turn the queue on (3.x needs it for progress bars and toasts) with ``concurrency`` workers.

    3.x spells the limit ``concurrency_count`` (one worker by default, which would serialize the
    cancel button behind a running download); 4.x+ ``default_concurrency_limit``.
    """
    queue = demo.queue
    if accepts(queue, "default_concurrency_limit"):
        return queue(default_concurrency_limit=concurrency)
    return queue(**supported_kwargs(queue, {"concurrency_count": concurrency}))


def launch_kwargs(demo: gr.Blocks, **kwargs) -> Dict[str, Any]:
    """Arguments for ``demo.launch`` that this version accepts."""
    return supported_kwargs(demo.launch, kwargs)


def in_gradio_event() -> bool:
    """Whether this thread runs a Gradio event handler (so a toast can reach a user)."""
    try:
        from gradio.context import LocalContext  # 4.x and later
    except ImportError:
        LocalContext = None
    if LocalContext is not None:
        blocks_var = getattr(LocalContext, "blocks", None)
        if blocks_var is not None and blocks_var.get(None) is not None:
            return True
        return False
    try:  # 3.x keeps the running event in thread-local data
        from gradio.context import thread_data
    except ImportError:
        return False
    return getattr(thread_data, "blocks", None) is not None


def warn_user(message: str) -> bool:
    """Show ``message`` as a ``gr.Warning`` toast when inside an event; always log it.

    Returns whether a toast was sent. Never raises for lack of a UI: outside an event (CLI,
    tests, worker threads) the message is only logged.
    """
    logger.warning("%s", message)
    if not in_gradio_event():
        return False
    gr.Warning(message)
    return True
