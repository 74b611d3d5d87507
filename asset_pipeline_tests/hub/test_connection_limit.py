"""ASSET_PIPELINE_HUB_MAX_CONNECTIONS bounds the WebSocket connections one `asset-pipeline hub`
process serves: one more gets a `too_many_connections` error and close code 1013, a freed slot is
reused, and a garbage value stops the hub naming the variable."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asset_pipeline_testing.hub_process import hub_process, receive


def test_one_connection_over_the_limit_is_refused_with_1013_and_a_freed_slot_is_reused() -> None:
    with hub_process(ASSET_PIPELINE_HUB_MAX_CONNECTIONS="2") as hub:
        with connect(hub.ws_url + "/ws/monitor", open_timeout=10) as first, \
                connect(hub.ws_url + "/ws/partitions/a", open_timeout=10) as second:
            receive(first), receive(second)
            with connect(hub.ws_url + "/ws/monitor", open_timeout=10) as third:
                error = receive(third)
                assert (error["type"], error["code"]) == ("error", "too_many_connections")
                with pytest.raises(ConnectionClosed) as closed:
                    receive(third)
                assert closed.value.rcvd.code == 1013
            assert hub.status()["connections"] == 2 and hub.status()["max_connections"] == 2
            first.close()
            deadline = time.monotonic() + 10
            while hub.status()["connections"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            with connect(hub.ws_url + "/ws/monitor", open_timeout=10) as again:
                assert receive(again)["type"] == "connection"


@pytest.mark.parametrize("value", ["0", "-5", "1e9", "lots", "9" * 30])
def test_a_garbage_limit_stops_the_hub_naming_the_variable(value: str) -> None:
    with pytest.raises(RuntimeError, match="ASSET_PIPELINE_HUB_MAX_CONNECTIONS"), \
            hub_process(ASSET_PIPELINE_HUB_MAX_CONNECTIONS=value):
        pass
