"""Fetching output files against the fake provider's hostile deliveries: only allowed hosts and
schemes, every redirect hop checked, a byte limit while streaming, a total deadline, cancellation
between chunks, and one clear line naming the prediction and the reason (never the URL's path)."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from asset_pipeline.errors import ConfigurationError, OutputNotFetched, OutputRefused
from asset_pipeline.generation.delivery import Delivery, DeliveryLimits
from asset_pipeline.generation.delivery_hosts import delivery_hosts, host_allowed
from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeReplicateState]:
    with running_fake_replicate(FakeReplicateState(token="unused")) as state:
        state.files["ok.png"] = b"\x89PNG fine bytes"
        yield state


def fetch(fake: FakeReplicateState, output: object, *, cancelled: threading.Event | None = None, **limits) -> bytes:
    hosts = delivery_hosts(None, provider_base_url=fake.base_url)
    delivery = Delivery(DeliveryLimits(hosts=hosts, **limits))
    try:
        return delivery.fetch(output, partition_key="img-00", prediction_id="p123", billed_usd=0.003,
                              cancelled=cancelled or threading.Event())
    finally:
        delivery.close()


def test_default_hosts_are_replicates_delivery_domain_and_the_base_urls_host() -> None:
    assert delivery_hosts(None, provider_base_url=None) == ("replicate.delivery", "*.replicate.delivery")
    assert delivery_hosts(None, provider_base_url="http://127.0.0.1:8123")[-1] == "127.0.0.1:8123"
    assert delivery_hosts(None, provider_base_url="https://proxy.example.com/v1")[-1] == "proxy.example.com:443"
    assert delivery_hosts(" cdn.example.com, *.files.example.com ", provider_base_url="http://x") == \
        ("cdn.example.com", "*.files.example.com")


@pytest.mark.parametrize("configured", ["https://replicate.delivery", "replicate.delivery/files", "*", "a b", "*.x:port"])
def test_a_pattern_that_is_no_host_is_a_configuration_error(configured: str) -> None:
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_DELIVERY_HOSTS: .* is not a host pattern"):
        delivery_hosts(configured, provider_base_url=None)


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://replicate.delivery/pbxt/abc/out.png", True),
    ("https://xezq.replicate.delivery/abc/out.webp", True),
    ("https://evilreplicate.delivery/x.png", False),
    ("https://replicate.delivery.evil.com/x.png", False),
    ("http://169.254.169.254/latest/meta-data/", False),
    ("http://127.0.0.1:8123/files/x.png", True),
    ("http://127.0.0.1:22/files/x.png", False),  # the base URL's host, another port
    ("http://localhost:8123/files/x.png", False),
])
def test_host_patterns(url: str, allowed: bool) -> None:
    patterns = ("replicate.delivery", "*.replicate.delivery", "127.0.0.1:8123")
    assert host_allowed(httpx.URL(url), patterns) is allowed


def test_an_allowed_file_is_fetched(fake: FakeReplicateState) -> None:
    assert fetch(fake, [f"{fake.base_url}/files/ok.png"]) == b"\x89PNG fine bytes"


def test_a_foreign_host_is_refused_without_being_fetched(fake: FakeReplicateState) -> None:
    served = fake.delivery_requests["files"]
    url = fake.base_url.replace("127.0.0.1", "localhost") + "/files/ok.png?token=signed-secret"
    with pytest.raises(OutputRefused) as caught:
        fetch(fake, [url])
    message = str(caught.value)
    assert "img-00: prediction p123 succeeded but its output is on host 'http://localhost:" in message
    assert "not an allowed delivery host (ASSET_PIPELINE_DELIVERY_HOSTS" in message
    assert "signed-secret" not in message and "/files/" not in message
    assert caught.value.prediction_id == "p123" and caught.value.billed_usd == 0.003
    assert fake.delivery_requests["files"] == served


@pytest.mark.parametrize(("output", "reason"), [
    ("file:///etc/passwd", "uses the scheme 'file'"),
    ("ftp://replicate.delivery/x.png", "uses the scheme 'ftp'"),
    ("gopher://replicate.delivery:70/_x", "uses the scheme 'gopher'"),
    ("data:image/png;base64,@@not base64@@", "is a data: URI whose base64 is invalid"),
    ("data:image/png,rawbytes", "is a data: URI that is not base64-encoded"),
    ([], "is not a file URL (no output)"),
    (None, "is not a file URL (no output)"),
    ([{"url": 3}], "is not a file URL (a dict)"),
    ("https:///x.png", "is a URL without a host"),
])
def test_other_schemes_and_bad_outputs_are_refused(fake: FakeReplicateState, output: object, reason: str) -> None:
    with pytest.raises(OutputRefused, match="prediction p123 succeeded but its output " + re.escape(reason)):
        fetch(fake, output)


def test_data_uris_are_decoded_and_size_bounded(fake: FakeReplicateState) -> None:
    assert fetch(fake, "data:image/png;base64," + base64.b64encode(b"pixels").decode()) == b"pixels"
    big = "data:image/png;base64," + base64.b64encode(b"x" * 3 * 1024 * 1024).decode()
    with pytest.raises(OutputRefused, match=r"is a data: URI over the 1.0 MB download limit"):
        fetch(fake, big, max_bytes=1024 * 1024)


def test_a_redirect_loop_fails_fast(fake: FakeReplicateState) -> None:
    before = fake.delivery_requests["redirect"]
    started = time.monotonic()
    with pytest.raises(OutputRefused, match="redirected more than 5 times"):
        fetch(fake, f"{fake.base_url}/redirect/loop/0")
    assert time.monotonic() - started < 5
    assert fake.delivery_requests["redirect"] - before == 6


def test_a_redirect_leaving_the_allowed_hosts_is_refused_at_that_hop(fake: FakeReplicateState) -> None:
    served = fake.delivery_requests["files"]
    with pytest.raises(OutputRefused, match="is on host 'http://localhost:"):
        fetch(fake, f"{fake.base_url}/redirect/away/ok.png")
    assert fake.delivery_requests["files"] == served


def test_an_expired_file_is_refused(fake: FakeReplicateState) -> None:
    with pytest.raises(OutputRefused, match=r"is gone from 'http://127.0.0.1:\d+' \(HTTP 404; expired\)"):
        fetch(fake, f"{fake.base_url}/files/missing.png")


def test_the_byte_limit_stops_a_stream_without_a_length(fake: FakeReplicateState) -> None:
    with pytest.raises(OutputRefused, match=r"is over the 1.0 MB download limit \(ASSET_PIPELINE_MAX_DOWNLOAD_MB\); stopped reading"):
        fetch(fake, f"{fake.base_url}/huge/x.png", max_bytes=1024 * 1024)


def test_a_declared_length_over_the_limit_is_refused_unread(fake: FakeReplicateState) -> None:
    fake.files["big.png"] = b"y" * 300_000
    with pytest.raises(OutputRefused, match=r"is 0.3 MB, over the 0.1 MB download limit"):
        fetch(fake, f"{fake.base_url}/files/big.png", max_bytes=100_000)


def test_a_dripping_delivery_fails_at_its_deadline(fake: FakeReplicateState) -> None:
    fake.files["drip.png"] = b"z" * 4096
    fake.drip_interval_s = 0.2
    started = time.monotonic()
    with pytest.raises(OutputNotFetched, match=r"did not finish within 1 s \(ASSET_PIPELINE_DOWNLOAD_TIMEOUT_S\); "
                                               "the next run re-attaches to it") as caught:
        fetch(fake, f"{fake.base_url}/drip/drip.png", timeout_s=1.0)
    assert not isinstance(caught.value, OutputRefused)  # not refused for good: a later run may fetch it
    assert time.monotonic() - started < 2.5


def test_a_terminated_run_stops_a_download_between_chunks(fake: FakeReplicateState) -> None:
    fake.files["drip2.png"] = b"z" * 4096
    fake.drip_interval_s = 0.2
    cancelled = threading.Event()
    threading.Timer(0.5, cancelled.set).start()
    started = time.monotonic()
    with pytest.raises(OutputNotFetched, match="run terminated while downloading prediction p123's output"):
        fetch(fake, f"{fake.base_url}/drip/drip2.png", cancelled=cancelled)
    assert time.monotonic() - started < 1.5
