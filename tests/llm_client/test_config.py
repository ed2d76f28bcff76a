"""``ClientConfig`` refuses values that cannot work, naming the field and the valid range."""

from __future__ import annotations

import math
import pathlib

import pytest

from llm_client import Client, ClientConfig, ConfigurationError

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        # before: accepted, then the first retry slept a negative time (ValueError in tenacity)
        ("backoff_base", -1, "finite number >= 0"),
        ("backoff_cap", -3, "finite number >= 0"),
        # before: NaN passed "<= 0" checks: a crash 26 frames deep in httpx, or no deadline
        ("read_timeout", NAN, "finite number > 0"),
        ("connect_timeout", INF, "finite number > 0"),
        ("total_timeout", NAN, r"finite number > 0, or None \(no deadline\)"),
        ("rate_window", INF, "finite number > 0"),
        # before: counts took fractions (2.5 retries made 3 attempts) and strings crashed
        ("max_retries", 2.5, "int >= 0"),
        ("max_retries", True, "int >= 0"),
        ("rpm", 1.5, r"int >= 1, or None \(unlimited\)"),
        ("tpm", "10", r"int >= 1, or None \(unlimited\)"),
        ("default_max_tokens", 2.5, "int >= 1"),
        # before: a negative ttl silently cached nothing, a negative cap refused every 429
        ("cache_ttl", -10, r"finite number > 0, or None \(never expire\)"),
        ("cache_ttl", 0, r"finite number > 0, or None \(never expire\)"),
        ("max_retry_after", -1, "finite number >= 0"),
        ("jitter", NAN, r"in \[0, 1\)"),
        ("follow_ratelimit_headers", "yes", "True or False"),
        ("prices_per_million", {"m": (1.0, -1.0)}, "two finite numbers >= 0"),
    ],
)
def test_an_impossible_value_names_the_field_and_the_valid_range(field, value, valid):
    with pytest.raises(
        ConfigurationError, match=rf"^(prices_per_million\['m'\]|{field}) .*{valid}"
    ):
        ClientConfig(**{field: value})


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "total_timeout": None,
            "rpm": None,
            "tpm": None,
            "cache_ttl": None,
        },  # the documented Nones
        {"backoff_base": 0, "backoff_cap": 0, "jitter": 0, "max_retry_after": 0, "max_retries": 0},
        {"read_timeout": 1, "rpm": 1, "cache_ttl": 0.5, "prices_per_million": {"m": (0, 2)}},
    ],
)
def test_the_edges_of_each_range_are_accepted(overrides):
    config = ClientConfig(**overrides)
    assert all(getattr(config, k) == v for k, v in overrides.items())


@pytest.mark.parametrize("cache_dir", ["", "   ", 123, b"/tmp/x", ["a"]])
def test_a_cache_dir_that_is_no_path_is_refused(cache_dir, tmp_path, monkeypatch):
    # before: "" (an unset environment variable) cached into the current directory, silently;
    # 123 and bytes raised a bare TypeError from pathlib when the client was made
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"^cache_dir must be a non-empty path .* or None"):
        Client("http://127.0.0.1:1/v1", model="m", cache_dir=cache_dir)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cache_dir", [None, "cache", pathlib.Path("cache")])
def test_a_cache_dir_may_be_none_a_str_or_a_path(cache_dir):
    assert ClientConfig(cache_dir=cache_dir).cache_dir == cache_dir


def test_with_overrides_validates_too():
    with pytest.raises(ConfigurationError, match="backoff_base"):
        ClientConfig().with_overrides(backoff_base=-1)


@pytest.mark.parametrize(
    ("base_url", "valid"),
    [
        # before: accepted; the requests went to port 34463 (99999 mod 65536), key included
        ("http://127.0.0.1:99999/v1", r"port 99999; a port is 1..65535"),
        ("http://127.0.0.1:0/v1", r"port 0; a port is 1..65535"),
        # before: accepted; the endpoint was appended inside the query or fragment
        ("http://host/v1?api-version=1", "has a query or fragment"),
        ("http://host/v1?", "has a query or fragment"),
        ("http://host/v1#top", "has a query or fragment"),
    ],
)
def test_a_base_url_with_an_impossible_port_a_query_or_a_fragment_is_refused(base_url, valid):
    with pytest.raises(ConfigurationError, match=rf"^base_url .*{valid}"):
        ClientConfig(base_url=base_url).resolved()


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:1/v1", "https://h:65535/v1", "http://h/"])
def test_a_base_url_with_a_port_at_the_edges_or_none_is_accepted(base_url):
    assert ClientConfig(base_url=base_url).resolved().base_url == base_url.rstrip("/")


KEY, PASSWORD = "sk-live-0123456789abcdef", "s3cret-pass"


def test_the_repr_shows_no_key_and_no_password_of_the_base_url():
    # before: the dataclass repr printed api_key='sk-live-...' and base_url='http://alice:...@'
    config = ClientConfig(base_url=f"http://alice:{PASSWORD}@127.0.0.1:9/v1", api_key=KEY)
    for text in (repr(config), str(config), f"{config}", repr(config.resolved())):
        assert KEY not in text and PASSWORD not in text
        assert "api_key='***cdef'" in text and "base_url='http://***@127.0.0.1:9/v1'" in text
    assert "api_key='***'" in repr(ClientConfig(api_key="sk-short"))  # 4 would be half of it
    assert "api_key=None" in repr(ClientConfig())
    assert "max_retries=4" in repr(config)  # every other field is still shown


def test_a_refused_base_url_is_quoted_without_its_password():
    with pytest.raises(ConfigurationError, match=r"base_url 'http://\*\*\*@h:99999/v1' has port"):
        ClientConfig(base_url=f"http://alice:{PASSWORD}@h:99999/v1").resolved()
