"""How a tab handler reports: a failed action shows one toast with a sentence saying what to do,
logs one line (the traceback at DEBUG) and never raises into Gradio (which would paint every
output with a red "Error" badge); news is an information toast. :func:`_handled` wraps the
handlers of every panel."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import gradio as gr

from ..errors import (
    ApiError,
    CivitaiGalleryError,
    InvalidQueryError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from .gradio_compat import in_gradio_event
from .messages import say
from .persist import settings_place

logger = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """The sentence a user sees for an error, with what to do about it."""
    text = str(exc).strip() or exc.__class__.__name__
    if isinstance(exc, (InvalidQueryError, NotFoundError)):
        return text  # these already say which input is wrong and what to enter
    if isinstance(exc, NetworkError):
        return say("network", error=text, where=settings_place())
    if isinstance(exc, (RateLimitedError, ServerError)):
        return say("busy", error=text)
    if isinstance(exc, ApiError):
        return say("api", error=text)
    return text


def toast_problem(message: str) -> None:
    """The one toast of a failed action: ``gr.Warning`` (raising ``gr.Error`` would also mark every
    output component with Gradio's error badge). Outside an event it is only logged."""
    if in_gradio_event():
        gr.Warning(message)


def _handled(fallback: Callable[..., Any]):
    """Run a handler so that nothing reaches Gradio's error badge.

    A typed error (bad input, Civitai's answer, the disk) is logged as one INFO line (its
    traceback at DEBUG) and shown as one toast; anything else is a bug: its traceback is logged
    at ERROR and the toast says so. Either way the handler returns ``fallback(message, *args)``,
    which keeps every output consistent (usually: unchanged).
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CivitaiGalleryError as exc:
                message = user_message(exc)
                logger.info("%s: %s", fn.__name__, exc)
                logger.debug("%s failed", fn.__name__, exc_info=True)
            except Exception as exc:  # the UI boundary: a bug, logged with its traceback
                logger.exception("%s failed unexpectedly", fn.__name__)
                message = say("bug", error=f"{exc.__class__.__name__}: {exc}")
            toast_problem(message)
            return fallback(message, *args, **kwargs)

        return wrapper

    return decorate


def inform_user(message: str) -> None:
    """An information toast (``gr.Info``) inside an event; logged either way."""
    logger.info("%s", message)
    if in_gradio_event():
        gr.Info(message)
