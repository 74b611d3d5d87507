"""Who may use the hub and where it may listen."""

from __future__ import annotations

import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.hub.access import authorized, check_bind, presented_token


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_any_other_address_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigurationError, match=f"ASSET_PIPELINE_HUB_TOKEN: refusing to listen on {host} without"):
        check_bind(host, None)
    check_bind(host, "s3cret")


def test_tokens_come_from_the_bearer_header_or_the_query() -> None:
    assert presented_token({"authorization": "Bearer abc"}, {"token": "zzz"}) == "abc"
    assert presented_token({}, {"token": "zzz"}) == "zzz"
    assert presented_token({}, {}) is None
    assert authorized(None, None) and authorized("abc", "abc")
    assert not authorized("abc", None) and not authorized("abc", "abd")
