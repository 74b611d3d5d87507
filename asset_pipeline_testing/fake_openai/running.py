"""Run the fake OpenAI-compatible server with uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from asset_pipeline_testing.fake_openai.server import FakeOpenAIState, build_app
from asset_pipeline_testing.serving import free_port, serving


@contextmanager
def running_fake_openai(state: FakeOpenAIState) -> Iterator[FakeOpenAIState]:
    port = free_port()
    state.base_url = f"http://127.0.0.1:{port}"
    with serving(build_app(state), port=port):
        yield state
