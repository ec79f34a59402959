"""The tab's save options (metadata formats, output folder, path template, thumbnails): each control
shows its setting and saves a change where :mod:`.persist` keeps the tab's settings."""

from __future__ import annotations

import os
from typing import Any, Callable

from .. import setting
from ..errors import InvalidQueryError
from . import persist
from .feedback import _handled
from .messages import say

# control name -> setting key; the tab's controls show these settings and change them
TAB_OPTIONS = {
    "formats": "images.metadata_format",
    "output": "images.output_path",
    "template": "images.path_template",
    "thumbnails": "images.generate_thumbnails",
    "sleep_request": "http_sleep_request",  # pacing (ui/follow_panel.pacing_options)
    "limit_rate": "http_limit_rate",
}
METADATA_CHOICES = ("json", "txt", "exif")


def option_value(name: str) -> Any:
    """The current setting behind control ``name``, shaped for the control."""
    value = setting.get(TAB_OPTIONS[name])
    if name == "formats":
        return [f.strip() for f in str(value).split(",") if f.strip()]
    if name == "output":
        return os.path.abspath(os.path.expanduser(str(value)))
    return value


def _option_saver(name: str) -> Callable[[Any], Any]:
    key = TAB_OPTIONS[name]

    @_handled(lambda message, *args, **kwargs: option_value(name))
    def save(value: Any) -> Any:
        if name == "output":
            from ..store.paths import check_output_folder

            text = str(value or "").strip()
            if not text:
                raise InvalidQueryError(say("enter_output"))
            value = check_output_folder(text)
        elif name == "formats":
            value = ",".join(f for f in METADATA_CHOICES if f in (value or []))
            if not value:
                raise InvalidQueryError(say("tick_format"))
        persist.store(key, value)
        return option_value(name)

    save.__name__ = f"save_{name}"
    return save


save_formats = _option_saver("formats")
save_output = _option_saver("output")
save_template = _option_saver("template")
save_thumbnails = _option_saver("thumbnails")
save_sleep_request = _option_saver("sleep_request")
save_limit_rate = _option_saver("limit_rate")
