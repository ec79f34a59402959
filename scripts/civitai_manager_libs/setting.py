"""Every setting in one place (the backlog's ``setting`` module): a facade over :mod:`.settings`.

``setting.get("images.output_path")``, ``setting.set(...)``, ``setting.load()`` / ``save()`` and the
backlog's attribute names (``setting.http_timeout``, ``setting.images_output_path``) all reach the
one in-memory state in :mod:`.settings.state`; the table is :mod:`.settings.specs`.
"""

from __future__ import annotations

from typing import Any, List

from .settings import state as _state
from .settings.state import (  # noqa: F401  (the public API)
    DEFAULT_CACHE_EXTENSION,
    DUPLICATE_POLICIES,
    MEDIA_EXTENSIONS,
    METADATA_FORMATS,
    REDACTED,
    SETTINGS_ENV,
    SPECS,
    SettingSpec,
    as_dict,
    get,
    get_image_url_to_gallery_file,
    load,
    repo_root,
    reset,
    revision,
    save,
    set,
    settings_path,
    source,
    update,
)

__all__ = list(_state.__all__)


def __getattr__(name: str) -> Any:
    """Everything else the state module has, including the backlog's attribute names."""
    return getattr(_state, name)


def __dir__() -> List[str]:
    return sorted(dict.fromkeys([*globals(), *dir(_state)]))
