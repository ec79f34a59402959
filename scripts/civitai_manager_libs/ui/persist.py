"""Where a setting changed in the tab is kept, and where the tab's messages send the user to change
one: the standalone app's settings file; inside WebUI the host replaces :data:`option_persister`
with one that stores WebUI's option (``scripts/civitai_gallery.py``)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from .. import setting
from .messages import say

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def save_to_settings_file(key: str, value: Any) -> None:
    """Persist one tab option in the standalone app's settings file (only that key changes: the
    file may hold values this process overrides, e.g. ``--demo``'s local Civitai)."""
    from ..settings.file import read_settings_file, write_settings_file

    path = setting.settings_path()
    data = dict(read_settings_file(path) or {})
    data[key] = list(value) if isinstance(value, tuple) else value
    write_settings_file(path, data)
    logger.debug("saved %s in %s", key, path)


# Where a changed tab option is kept: the settings file standalone; inside WebUI the host
# replaces it with one that stores WebUI's option (scripts/civitai_gallery.py).
option_persister: Callable[[str, Any], None] = save_to_settings_file


def store(key: str, value: Any) -> bool:
    """Validate ``value`` for setting ``key`` (``SettingsError`` before anything is kept), keep it
    where :data:`option_persister` keeps settings and apply it; False when it was the value
    already (nothing written)."""
    with _lock:  # one read-modify-write of the settings file at a time
        stored = setting.SPECS[key].validate(value)
        if stored == setting.get(key):
            return False
        option_persister(key, stored)
        setting.set(key, stored)
    logger.info("setting %s set to %r from the tab", key, stored)
    return True


#: Where the user changes a setting a message names: set by the host (WebUI: its Settings page;
#: the standalone app: the Settings box of the tab, and the file they are saved in).
def settings_place() -> str:
    if option_persister is save_to_settings_file:
        return say("where_app", path=setting.settings_path())
    return say("where_webui")
