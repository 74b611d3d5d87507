"""Pytest fixtures: a running fake Replicate server, and the environment that points the client at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asset_pipeline_testing.fake_replicate.running import running_fake_replicate
from asset_pipeline_testing.fake_replicate.server import FakeReplicateState

TOKEN = "r8_SECRETtokenNEVERtoBEshown0123456789"


@pytest.fixture
def fake_replicate(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReplicateState]:
    with running_fake_replicate(FakeReplicateState(token=TOKEN)) as state:
        monkeypatch.setenv("REPLICATE_BASE_URL", state.base_url)
        monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
        monkeypatch.setenv("ASSET_PIPELINE_POLL_INTERVAL_S", "0.02")
        monkeypatch.setenv("ASSET_PIPELINE_BACKOFF_BASE_S", "0.01")
        yield state
