"""Failures are classified by type (class, attribute, result code), never by the wording of a
message (issue 26 item 5): a message that mentions a word no longer decides, and a reworded
message keeps its class."""

import socket
import sqlite3

import pytest
import requests
from urllib3 import exceptions as urllib3_exceptions

from scripts.civitai_manager_libs.errors import (
    ArchiveError,
    DiskSpaceError,
    DownloadError,
    OutputPathError,
    UnexpectedContentError,
)
from scripts.civitai_manager_libs.resources.fetch import _needs_login
from scripts.civitai_manager_libs.store.archive import Archive
from scripts.civitai_manager_libs.transport.failure_reason import transport_reason
from scripts.civitai_manager_libs.transport.media_sniff import describe_non_media, non_media_kind
from scripts.civitai_manager_libs.util.documents import (
    DocumentError,
    NotFiniteError,
    read_document,
)


def test_non_media_kind_names_what_arrived():
    assert non_media_kind(b"<!DOCTYPE html><p>log in</p>", "text/plain") == "html"
    assert non_media_kind(b'{"error": "html"}', "application/json") == "json"
    assert non_media_kind(b"", None) == "empty"
    assert non_media_kind(b"<?xml version='1.0'?>", "application/xml") == "markup"
    assert non_media_kind(b"\x00\x01 garbage", "application/octet-stream") == "unknown"
    assert describe_non_media(b"<html>", "text/html; charset=utf-8") == "an HTML page (text/html)"


def test_login_page_is_recognised_by_kind_not_by_the_word_html():
    # a JSON answer whose text mentions "html" is not the login page
    mentions = UnexpectedContentError("https://x/y sent JSON saying 'see help.html'", kind="json")
    assert not _needs_login(mentions)
    # the login page keeps its class whatever the message says
    assert _needs_login(UnexpectedContentError("the host sent a web page", kind="html"))
    assert _needs_login(DownloadError("refused", status=403))
    assert not _needs_login(DownloadError("an html error page", status=500))


def test_not_finite_is_its_own_type():
    with pytest.raises(NotFiniteError):
        read_document(b'{"a": NaN}', what="answer")
    with pytest.raises(DocumentError) as info:  # a broken document that mentions "not finite"
        read_document(b'{"not finite": ', what="answer")
    assert not isinstance(info.value, NotFiniteError)


def _connection_error(reason: BaseException) -> requests.exceptions.ConnectionError:
    wrapped = urllib3_exceptions.MaxRetryError(None, "https://civitai.example/", reason=reason)
    return requests.exceptions.ConnectionError(wrapped)


def test_transport_reason_reads_the_cause_not_the_text():
    refused = urllib3_exceptions.NewConnectionError(None, "timed out, name unknown")
    refused.__cause__ = ConnectionRefusedError(111, "something else")
    assert transport_reason(_connection_error(refused)) == "the connection was refused"
    unresolved = urllib3_exceptions.NewConnectionError(None, "the connection was refused")
    unresolved.__cause__ = socket.gaierror(-2, "reworded resolver failure")
    assert transport_reason(_connection_error(unresolved)) == "the host name could not be resolved"
    slow = urllib3_exceptions.ReadTimeoutError(None, "https://civitai.example/", "refused")
    assert transport_reason(requests.exceptions.ConnectionError(slow)) == (
        "the server stopped sending data (read timeout)"
    )
    assert transport_reason(requests.exceptions.ConnectionError("refused, timed out")) == (
        "the connection failed"
    )


def test_transport_reason_for_a_real_refused_connection():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert transport_reason(info.value) == "the connection was refused"


def _sqlite_error(text: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    "text, code, expected, words",
    [
        ("database or disk is full", 26, ArchiveError, "damaged"),  # NOTADB says the code
        ("file is not a database", 13, DiskSpaceError, "disk is full"),  # FULL
        ("database is locked", 8, OutputPathError, "not writable"),  # READONLY
        ("attempt to write a readonly database", 5, ArchiveError, "locked"),  # BUSY
        ("database disk image is malformed", 11 | (1 << 8), ArchiveError, "damaged"),  # extended
    ],
)
def test_archive_errors_follow_the_sqlite_result_code(tmp_path, text, code, expected, words):
    with Archive(str(tmp_path / "a.sqlite3")) as archive:
        with pytest.raises(expected) as info:
            with archive._guard("read"):
                raise _sqlite_error(text, code)
    assert type(info.value) is expected
    assert words in str(info.value)


def test_grouped_failures_read_the_same_whatever_order_downloads_ended_in():
    from scripts.civitai_manager_libs.engine.failures import group_failures

    pairs = [(7, "HTTP 404"), (3, "disk full"), (5, "HTTP 404"), (2, "disk full"), (9, "HTTP 404")]
    pairs += [("?", "HTTP 404")]
    first = group_failures(pairs, samples=3)
    assert group_failures(list(reversed(pairs)), samples=3) == first
    assert [(g.count, g.sample_ids) for g in first] == [(4, (5, 7, 9)), (2, (2, 3))]
    ties = [(1, "disk full"), (2, "HTTP 404")]
    assert group_failures(ties) == group_failures(list(reversed(ties)))
