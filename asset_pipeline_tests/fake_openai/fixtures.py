"""Pytest fixtures: a running fake OpenAI-compatible server and a brief-and-style catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asset_pipeline_testing.briefs import LLM_KEY, llm_environment, write_brief_catalog
from asset_pipeline_testing.fake_openai.running import running_fake_openai
from asset_pipeline_testing.fake_openai.server import FakeOpenAIState


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIState]:
    """The fake LLM, and the environment that makes `ASSET_PIPELINE_PROMPTS=llm` use it."""
    with running_fake_openai(FakeOpenAIState(api_key=LLM_KEY)) as state:
        for name, value in llm_environment(state.v1).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("ASSET_PIPELINE_BACKOFF_BASE_S", "0.01")
        yield state


@pytest.fixture
def brief_catalog(tmp_path: Path) -> Path:
    return write_brief_catalog(tmp_path / "briefs.yaml")
