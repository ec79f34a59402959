"""Logging set-up shared by the shells, with a filter that keeps secrets out of every record."""

from __future__ import annotations

import logging
import re
import threading
from typing import List, Set

_secrets: Set[str] = set()
_lock = threading.Lock()
# A query (or ``name=value``) whose name ends like a secret: token, key, api_key, auth, sig,
# signature, password, secret, credential, session... (``access_token``, ``X-Amz-Signature``).
SECRET_NAME = (
    r"[\w.\-]*(?:token|key|auth|authorization|sig|signature|password|passwd|pwd|pass|secret"
    r"|credential|credentials|session|sessionid|jwt|hmac|otp)"
)
# In a query string (after ``?``, ``&``, ``;`` or ``#``) every secret-looking name is masked; in
# free text only the unmistakable ones (``token=``, ``api_key=``, ``password=``...).
_TOKEN_RE = re.compile(r"(?i)((?<=[?&;#])" + SECRET_NAME + r"=)[^&;\s'\"#]+")
_FREE_TOKEN_RE = re.compile(
    r"(?i)(\b[\w.\-]*(?:token|api_key|apikey|api-key|password|passwd|secret|signature)=)"
    r"[^&;\s'\"#]+"
)
_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]+")
MASK = "***"


def register_secret(value: str) -> None:
    """Remember a secret (the API key) so no log record can ever carry it."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def registered_secrets() -> List[str]:
    """Every registered secret (the settings register the API key when it is set or read)."""
    with _lock:
        return sorted(_secrets)


def redact(text: str) -> str:
    """Mask every registered secret, the values of secret-looking query names (``token=``,
    ``key=``, ``sig=``, ``password=``...), ``user:password@`` in URLs and bearer tokens."""
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _TOKEN_RE.sub(r"\1" + MASK, text)
    text = _FREE_TOKEN_RE.sub(r"\1" + MASK, text)
    text = _USERINFO_RE.sub(r"\1" + MASK + "@", text)
    return _BEARER_RE.sub(r"\1" + MASK, text)


class SecretFilter(logging.Filter):
    """Rewrites each record's final message with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_filter(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(SecretFilter())


_HANDLER_NAME = "civitai-gallery"


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the root logger once for a shell (CLI or standalone UI)."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    if not root.handlers:
        ours = logging.StreamHandler()
        ours.set_name(_HANDLER_NAME)
        root.addHandler(ours)
    # A user's messages by default; the module that said it only with -v (for a bug report).
    where = " %(name)s:" if verbose else ""
    for handler in root.handlers:
        if handler.get_name() == _HANDLER_NAME:
            handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s{where} %(message)s"))
    root.setLevel(level)
    install_filter(root)
    for noisy in ("urllib3", "httpx", "httpcore", "PIL", "matplotlib", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 warns on every retry ("Retrying (...) after connection broken ..."): retry details
    # are for -v; the default output keeps one line per problem (the transport's own)
    logging.getLogger("urllib3.connectionpool").setLevel(
        logging.DEBUG if verbose else logging.ERROR
    )
