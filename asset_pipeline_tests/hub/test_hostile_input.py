"""Hostile publishers and subscribers against a real hub on loopback (httpx, websockets).

Non-finite numbers are refused (422) and never sent; deep nesting and giant numbers answer 400,
never 500; oversized fields answer 422 naming the field; a bad `after_seq` or `hub_id` gets an
`error` and a 1008 close frame (query) or an `error` on a live connection (message); a ledger figure
that is NaN reaches subscribers as null; a subscriber whose queue passes its byte bound is cut.
"""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from asset_pipeline.hub.server import HubConfig
from asset_pipeline_testing.hub_process import (
    progress,
    receive,
    receive_until,
    running_hub,
    stalled_subscriber,
)


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/api/events", content=body, headers={"Content-Type": "application/json"}, timeout=30)


@pytest.fixture(scope="module")
def hub():
    with running_hub() as running:
        yield running


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("field", ["percentage", "eta_s", "cost_usd", "elapsed_s"])
def test_non_finite_numbers_are_refused(hub, number: str, field: str) -> None:
    response = post(hub.url, f'{{"type":"progress","partition_key":"a","status":"generating","{field}":{number}}}'
                    .encode())
    assert response.status_code == 422, response.text
    [problem] = response.json()["problems"]
    assert problem["loc"][-1] == field and "finite" in problem["msg"]


def test_a_non_finite_run_event_time_is_refused_and_nothing_is_broadcast(hub) -> None:
    with hub.subscribe() as client:
        receive(client), receive(client)
        body = b'[{"type":"run_event","event_id":"r:1","run_id":"r","event_type":"STEP_START","at":NaN}]'
        assert post(hub.url, body).status_code == 422
        hub.publish(progress("after"))
        assert receive_until(client, "progress")["partition_key"] == "after"  # the NaN event never came


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000, b'[{"type":"progress","message":' + b"[" * 5000])
def test_deep_nesting_answers_400_with_a_clear_message(hub, body: bytes) -> None:
    response = post(hub.url, body)
    assert response.status_code == 400 and response.json()["error"].startswith("malformed JSON: recursion limit")


def test_giant_numbers_answer_400_not_500(hub) -> None:
    body = b'{"type":"progress","partition_key":"a","status":"generating","current_step":' + b"9" * 5000 + b"}"
    response = post(hub.url, body)
    assert response.status_code == 400 and "number out of range" in response.json()["error"]
    too_many = hub.publish(progress("a", current_step=10**7))
    assert too_many.status_code == 422 and too_many.json()["problems"][0]["loc"][-1] == "current_step"


@pytest.mark.parametrize(("field", "value"), [
    ("partition_key", "k" * 81), ("run_id", "r" * 65), ("message", "m" * 2001), ("stage", "s" * 41),
    ("path", "p" * 501),
])
def test_oversized_fields_are_refused_naming_the_field(hub, field: str, value: str) -> None:
    response = hub.publish({**progress("a"), field: value})
    assert response.status_code == 422 and response.json()["problems"][0]["loc"][-1] == field


@pytest.mark.parametrize("query", ["after_seq=" + "9" * 5000, "after_seq=-1", "after_seq=%C2%B2", "after_seq=1e3",
                                   "after_seq=9007199254740992", "after_seq=5&hub_id=NOT-HEX"])
def test_a_bad_resume_query_gets_an_error_and_a_policy_close_frame(hub, query: str) -> None:
    with hub.subscribe("/ws/monitor?" + query) as client:
        error = receive(client)
        assert (error["type"], error["code"]) == ("error", "invalid")
        with pytest.raises(ConnectionClosed) as closed:
            receive(client)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_bad_resume_messages_get_an_error_and_the_connection_lives_on(hub) -> None:
    with hub.subscribe() as client:
        receive(client), receive(client)
        for text, code in [('{"type":"resume","after_seq":' + "9" * 5000 + "}", "malformed_json"),
                           ('{"type":"resume","after_seq":9007199254740992}', "invalid"),
                           ('{"type":"resume","after_seq":NaN}', "invalid"),
                           ('{"type":"resume","after_seq":1,"hub_id":"<script>"}', "invalid"),
                           ("[" * 20_000, "malformed_json"),
                           ('{"type":"subscribe-everything"}', "unknown_type")]:
            client.send(text)
            error = receive_until(client, "error")
            assert error["code"] == code, (text[:60], error)
            assert len(error["message"]) < 400
        client.send(json.dumps({"type": "ping"}))
        assert receive_until(client, "pong")["type"] == "pong"


def test_a_nan_from_the_ledger_reaches_subscribers_as_null() -> None:
    spend = {"spent_total_usd": math.nan, "spent_today_usd": 1.5, "cap_total_usd": math.inf}
    with running_hub(HubConfig(spend_source=lambda: spend, spend_interval_s=0.05)) as hub:
        deadline = time.monotonic() + 5
        while hub.hub.state.spend is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with hub.subscribe() as client:
            receive(client)
            snapshot = json.loads(client.recv(timeout=5))  # strict JSON: a NaN would not parse in a browser
        assert snapshot["spend"] == {"spent_total_usd": None, "spent_today_usd": 1.5, "cap_total_usd": None}


def test_a_subscriber_past_its_byte_bound_is_cut_off() -> None:
    with running_hub(HubConfig(client_queue_size=100_000, client_queue_bytes=256 * 1024)) as hub, \
            stalled_subscriber(hub.url):
        for _ in range(600):  # ~12 MB for a client that reads nothing (the kernel's buffers take a few)
            assert hub.publish([progress("a", message="x" * 1900) for _ in range(10)]).status_code == 200
            if hub.hub.status()["slow_clients_disconnected"]:
                break
        assert hub.hub.status()["slow_clients_disconnected"] == 1
        assert hub.hub.status()["dropped"] < 10
