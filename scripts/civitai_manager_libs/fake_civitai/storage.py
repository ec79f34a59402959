"""The fake's storage host for model files (served by the image host under ``/storage/models/``).

Like the S3/R2 buckets Civitai's download links point at, it answers **400** when a request
carries an ``Authorization`` header, so a client that forwards the API key across the redirect
fails here. Files support Range requests (resume). Knob: ``corrupt`` (a set of version ids whose
bytes are served with one byte flipped, for checksum tests).
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Optional, Set

from .media import BytesBody
from .models_api import SPECS_BY_VERSION, STORAGE_PREFIX, model_file_bytes
from .response import Response, text_response


class ModelStorage:
    def __init__(self) -> None:
        self.corrupt: Set[int] = set()

    def handle(self, path: str, headers: Mapping[str, str]) -> Optional[Response]:
        """The response for a storage path, or None when ``path`` is not one."""
        if not path.startswith(STORAGE_PREFIX):
            return None
        if headers.get("Authorization"):
            return text_response(
                400,
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                "</Message></Error>",
                "application/xml",
            )
        version, _, name = path[len(STORAGE_PREFIX) :].partition("/")
        spec = SPECS_BY_VERSION.get(int(version)) if version.isdigit() else None
        if spec is None or name != spec.file_name:
            return text_response(404, "NoSuchKey")
        data = model_file_bytes(spec.version_id)
        if spec.version_id in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        headers_out = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{spec.file_name}"',
        }
        return Response(200, headers_out, BytesBody(data), ranged=True)
