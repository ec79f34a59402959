"""parse_query / target_to_params: the full table of accepted inputs and the refusals."""

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.civitai_manager_libs.errors import InvalidQueryError
from scripts.civitai_manager_libs.civitai.query import (
    ACCEPTED_FORMS,
    Target,
    parse_query,
    target_to_params,
    validate_username,
)

ACCEPTED = [
    # ids and keywords
    ("123", Target("model", 123), {"modelId": 123}),
    ("  123\t", Target("model", 123), {"modelId": 123}),
    ("model 123", Target("model", 123), {"modelId": 123}),
    ("Model:123", Target("model", 123), {"modelId": 123}),
    ("model #123", Target("model", 123), {"modelId": 123}),
    ("models 7", Target("model", 7), {"modelId": 7}),
    ("version 456", Target("version", 456), {"modelVersionId": 456}),
    ("model version 456", Target("version", 456), {"modelVersionId": 456}),
    ("modelVersion=456", Target("version", 456), {"modelVersionId": 456}),
    ("image 789", Target("image", 789), {"imageId": 789}),
    ("img:789", Target("image", 789), {"imageId": 789}),
    ("post 12", Target("post", 12), {}),
    ("user alice", Target("user", "alice"), {"username": "alice"}),
    ("creator Bob_99", Target("user", "Bob_99"), {"username": "Bob_99"}),
    ("@carol_b2", Target("user", "carol_b2"), {"username": "carol_b2"}),
    ("@20250101", Target("user", "20250101"), {"username": "20250101"}),
    ("user @dave", Target("user", "dave"), {"username": "dave"}),
    # links, any host
    ("https://civitai.com/models/123", Target("model", 123), {"modelId": 123}),
    ("https://civitai.com/models/123/", Target("model", 123), {"modelId": 123}),
    ("https://civitai.com/models/123/some-slug", Target("model", 123), {"modelId": 123}),
    (
        "https://civitai.com/models/123/some-slug?modelVersionId=456",
        Target("model", 123, version_id=456),
        {"modelId": 123, "modelVersionId": 456},
    ),
    (
        "https://civitai.com/models/123?modelVersionId=456",
        Target("model", 123, version_id=456),
        {"modelId": 123, "modelVersionId": 456},
    ),
    ("civitai.com/models/123", Target("model", 123), {"modelId": 123}),
    ("https://civitai.com/models/123?modelVersionId=", Target("model", 123), {"modelId": 123}),
    (
        "HTTPS://CIVITAI.COM/Models/123/slug?modelversionid=4#gallery",
        Target("model", 123, version_id=4),
        {"modelId": 123, "modelVersionId": 4},
    ),
    ("www.civitai.com/images/789", Target("image", 789), {"imageId": 789}),
    ("https://civitai.com/images/789", Target("image", 789), {"imageId": 789}),
    (
        "https://civitai.com/images/789?postId=3&modelVersionId=9",
        Target("image", 789),
        {"imageId": 789},
    ),
    ("https://civitai.com/user/alice", Target("user", "alice"), {"username": "alice"}),
    (
        "https://civitai.com/user/alice/images",
        Target(
            "filter", "username=alice&type=image", params={"username": "alice", "type": "image"}
        ),
        {"username": "alice", "type": "image"},
    ),
    (
        "https://civitai.com/user/alice/videos",
        Target(
            "filter", "username=alice&type=video", params={"username": "alice", "type": "video"}
        ),
        {"username": "alice", "type": "video"},
    ),
    ("/user/alice", Target("user", "alice"), {"username": "alice"}),
    ("/models/42", Target("model", 42), {"modelId": 42}),
    ("https://civitai.com/posts/12", Target("post", 12), {}),
    (
        "https://civitai.com/api/v1/images?modelId=1&sort=Newest",
        Target("filter", "modelId=1&sort=Newest", params={"modelId": 1, "sort": "Newest"}),
        {"modelId": 1, "sort": "Newest"},
    ),
    ("https://civitai.com/api/v1/models/8", Target("model", 8), {"modelId": 8}),
    ("https://civitai.com/api/v1/model-versions/9", Target("version", 9), {"modelVersionId": 9}),
    # filter strings
    (
        "username=x&sort=Newest",
        Target("filter", "username=x&sort=Newest", params={"username": "x", "sort": "Newest"}),
        {"username": "x", "sort": "Newest"},
    ),
    (
        "?USERNAME=x&sort=most+reactions&period=alltime",
        Target(
            "filter",
            "username=x&sort=Most+Reactions&period=AllTime",
            params={"username": "x", "sort": "Most Reactions", "period": "AllTime"},
        ),
        {"username": "x", "sort": "Most Reactions", "period": "AllTime"},
    ),
    (
        "modelVersionId=4&type=video&nsfw=mature&tags=anime",
        Target(
            "filter",
            "modelVersionId=4&type=video&nsfw=Mature&tags=anime",
            params={"modelVersionId": 4, "type": "video", "nsfw": "Mature", "tags": "anime"},
        ),
        {"modelVersionId": 4, "type": "video", "nsfw": "Mature", "tags": "anime"},
    ),
    (
        "sort=Most%20Collected",
        Target("filter", "sort=Most+Collected", params={"sort": "Most Collected"}),
        {"sort": "Most Collected"},
    ),
]


@pytest.mark.parametrize("text,target,params", ACCEPTED, ids=[row[0] for row in ACCEPTED])
def test_accepted_inputs(text, target, params):
    parsed = parse_query(text)
    assert parsed == target
    assert parsed.params == target.params
    assert target_to_params(parsed) == params


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/models/4201",
        "example.org/images/6",
        "http://evil.civitai.com.x.io/models/1",
    ],
)
def test_links_to_other_websites_are_refused(text):
    with pytest.raises(InvalidQueryError, match="not Civitai"):
        parse_query(text)


def test_links_to_the_configured_or_given_civitai_host_are_accepted(monkeypatch):
    """The library takes the hosts as arguments; the shells pass the configured fronts
    (``configured_fronts``: settings read at the edges)."""
    from scripts.civitai_manager_libs import setting
    from scripts.civitai_manager_libs.transport.client_options import configured_fronts

    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)
    setting.set("civitai_base_url", "https://civitai.com")  # whatever an earlier test configured
    with pytest.raises(InvalidQueryError, match="not Civitai"):
        parse_query("http://127.0.0.1:8765/models/5/x", extra_hosts=configured_fronts())
    setting.set("civitai_base_url", "http://127.0.0.1:8765")
    assert parse_query("http://127.0.0.1:8765/models/5/x", configured_fronts()) == Target(
        "model", 5
    )
    with pytest.raises(InvalidQueryError, match="not Civitai"):  # not read from the settings
        parse_query("http://127.0.0.1:8765/models/5/x")
    setting.reset()
    assert parse_query("localhost:8765/images/6", extra_hosts=["http://localhost:9"]) == Target(
        "image", 6
    )
    assert parse_query("https://civitai.green/models/5") == Target("model", 5)
    assert parse_query("https://www.civitai.com/models/5") == Target("model", 5)


REFUSED = [
    ("", "Nothing to look up"),
    ("   ", "Nothing to look up"),
    ("hello", "Could not understand 'hello'"),
    ("model abc", "not a number"),
    ("model 0", "out of range"),
    ("model -5", "not a number"),
    ("version 99999999999999999999999", "out of range"),
    ("model 1 2", "Could not understand"),
    ("１２３", "Could not understand"),  # full-width digits are not ASCII ids
    ("ftp://civitai.com/models/1", "Could not understand"),
    ("file:///models/1", "Could not understand"),
    ("https://civitai.com/", "Could not understand"),
    ("https://civitai.com/models", "Could not understand"),
    ("https://civitai.com/models/abc", "not a number"),
    ("https://civitai.com/models/1?modelVersionId=x", "not a number"),
    ("https://civitai.com/images/1/2", "Could not understand"),
    ("https://civitai.com/user/a/b/c", "Could not understand"),
    ("https://civitai.com/user/a/unknown-tab", "Could not understand"),
    ("https://civitai.com/articles/5", "Could not understand"),
    ("https://civitai.com/api/v1/images", "needs filters"),
    ("usrname=x", "Unknown filter 'usrname'"),
    ("limit=5", "set by the downloader"),
    ("username=x&cursor=abc", "set by the downloader"),
    ("page=3", "set by the downloader"),
    ("modelId=1&modelid=2", "given twice"),
    ("modelId=x", "not a number"),
    ("sort=Best", "sort='Best' is not allowed"),
    ("type=gif", "not allowed"),
    ("username=x&broken", "not 'key=value'"),
    ("tags=a%00b", "plain text"),
    ("x" * 3000, "at most 2000"),
]


@pytest.mark.parametrize("text,message", REFUSED, ids=[row[0][:40] or "empty" for row in REFUSED])
def test_refused_inputs_say_why(text, message):
    with pytest.raises(InvalidQueryError) as info:
        parse_query(text)
    assert message in str(info.value)


def test_unrecognised_input_lists_the_accepted_forms():
    with pytest.raises(InvalidQueryError) as info:
        parse_query("something else")
    assert ACCEPTED_FORMS in str(info.value)
    for form in ("model 123", "version 456", "image 789", "@name", "/models/123", "/user/name"):
        assert form in str(info.value)


HOSTILE_USERNAMES = [
    "user ../../etc",
    "@..",
    "@.",
    "@a/b",
    "@a\\b",
    "user a..b",
    "@bad\x00name",
    "@bad\x1bname",
    "@tab\tname",
    "username=../x",
    "username=a%2Fb",
    "username=%2e%2e",
    "https://civitai.com/user/%2e%2e",
    "https://civitai.com/user/%2E%2E%2Fsecret",
    "https://civitai.com/user/a%2Fb",
    "https://civitai.com/user/a%5Cb",
    "https://civitai.com/user/a%00b",
    "https://civitai.com/user/" + "a" * 101,
    "@" + "b" * 101,
    "@name;rm",
    "@na me",
]


@pytest.mark.parametrize("text", HOSTILE_USERNAMES)
def test_hostile_usernames_are_refused(text):
    with pytest.raises(InvalidQueryError) as info:
        parse_query(text)
    message = str(info.value)
    assert "username" in message or "Could not understand" in message
    # control characters are shown escaped, never echoed raw into a UI or a log
    assert "\x00" not in message and "\x1b" not in message


def test_encoded_username_that_is_plain_is_decoded():
    assert parse_query("https://civitai.com/user/Bob%5F1") == Target("user", "Bob_1")


def test_validate_username_returns_the_name():
    assert validate_username("Some_User_12") == "Some_User_12"
    with pytest.raises(InvalidQueryError, match="empty"):
        validate_username("")


def test_long_hostile_input_is_shortened_in_the_message():
    with pytest.raises(InvalidQueryError) as info:
        parse_query("no such form " + "z" * 500)
    assert len(str(info.value)) < 80 + len(ACCEPTED_FORMS) + 40


def test_non_text_is_refused():
    with pytest.raises(InvalidQueryError, match="Expected text"):
        parse_query(123)


def test_target_describe_and_filter_value_is_a_stable_key():
    assert parse_query("model 1").describe() == "model 1"
    assert parse_query("/models/1?modelVersionId=2").describe() == "model 1 (version 2)"
    assert parse_query("version 3").describe() == "model version 3"
    assert parse_query("@x").describe() == "creator 'x'"
    first = parse_query("sort=newest&username=x")
    second = parse_query("  sort=Newest&username=x ")
    assert first.value == second.value == "sort=Newest&username=x"
    assert first.describe() == "images matching sort=Newest&username=x"


def test_target_to_params_returns_a_copy_for_filters():
    target = parse_query("username=x")
    params = target_to_params(target)
    params["sort"] = "Newest"
    assert target.params == {"username": "x"}


def test_target_to_params_refuses_unknown_kind():
    with pytest.raises(InvalidQueryError, match="Unknown target kind"):
        target_to_params(Target("nonsense", 1))


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda s: "@" + s, st.text(max_size=30)),
        st.builds(lambda s: "https://civitai.com/user/" + s, st.text(max_size=30)),
        st.builds(lambda s: "username=" + s, st.text(max_size=30)),
        st.builds(lambda s: "https://civitai.com/user/" + quote(s, safe=""), st.text(max_size=30)),
    )
)
def test_any_text_gives_a_target_or_an_invalid_query_error(text):
    try:
        target = parse_query(text)
    except InvalidQueryError as exc:
        assert str(exc)
        return
    assert target.kind in ("model", "version", "user", "image", "filter")
    params = target_to_params(target)
    names = [target.value] if target.kind == "user" else []
    names += [v for k, v in params.items() if k == "username"]
    for name in names:
        assert name and "/" not in name and "\\" not in name and ".." not in name
        assert not any(ord(ch) < 32 or ch.isspace() for ch in name)
    for key in ("modelId", "modelVersionId", "imageId", "postId", "userId"):
        if key in params:
            assert isinstance(params[key], int) and params[key] > 0


@pytest.mark.parametrize(
    "name", ["carol.b-2", "café", "Some_User-1.2", "画師タロウ", "a b", "x!", "ｆｕｌｌ"]
)
def test_usernames_civitai_refuses_are_refused_before_any_request(name):
    # Issue 11 item 10: Civitai answers 400 unless the name matches ^[A-Za-z0-9_]+$.
    from scripts.civitai_manager_libs.civitai.image_query import build_request

    with pytest.raises(InvalidQueryError, match="letters A-Z and a-z, digits and '_'"):
        validate_username(name)
    with pytest.raises(InvalidQueryError, match="not a Civitai username"):
        parse_query("@" + name if " " not in name else "user " + name.replace(" ", "%20"))
    with pytest.raises(InvalidQueryError, match="not a Civitai username"):
        build_request({"username": name}, ["None"])
