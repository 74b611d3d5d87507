"""The API transport's size cap: answers over the limit fail as they stream in (with or without a
Content-Length), answers within it pass through unchanged, and the URL in the error has no query."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from asset_pipeline.generation.bounded_transport import BoundedTransport, ResponseTooLarge


class Endless(httpx.SyncByteStream):
    def __init__(self) -> None:
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.sent += 65536
            yield b"x" * 65536


def client(handler) -> httpx.Client:
    return httpx.Client(transport=BoundedTransport(max_bytes=1_000_000, inner=httpx.MockTransport(handler)))


def test_an_endless_answer_without_a_length_stops_at_the_limit() -> None:
    stream = Endless()
    with pytest.raises(ResponseTooLarge) as caught:
        client(lambda request: httpx.Response(200, stream=stream)).get("https://api.example/v1/p/1?token=SECRET")
    assert stream.sent <= 1_000_000 + 65536
    assert str(caught.value) == "answer from https://api.example/v1/p/1 is longer than 1000000 bytes"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    stream = Endless()
    handler = lambda request: httpx.Response(200, headers={"content-length": "5000000"}, stream=stream)
    with pytest.raises(ResponseTooLarge, match=r"\(5000000 declared\)"):
        client(handler).get("https://api.example/v1/p/1")
    assert stream.sent == 0


def test_answers_within_the_limit_are_unchanged() -> None:
    answer = client(lambda request: httpx.Response(201, json={"id": "abc"})).post("https://api.example/v1/p")
    assert answer.status_code == 201 and answer.json() == {"id": "abc"}
