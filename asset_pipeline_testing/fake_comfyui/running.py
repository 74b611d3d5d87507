"""Run fake ComfyUI servers with uvicorn on free loopback ports, in background threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from asset_pipeline_testing.fake_comfyui.server import FakeComfyState, build_app
from asset_pipeline_testing.serving import free_port, serving


@contextmanager
def running_fake_comfyui(state: FakeComfyState) -> Iterator[FakeComfyState]:
    port = free_port()
    state.base_url = f"http://127.0.0.1:{port}"
    with serving(build_app(state), port=port, ws_max_size=1 << 20):
        yield state


@contextmanager
def running_fake_comfyuis(states: list[FakeComfyState]) -> Iterator[list[FakeComfyState]]:
    """Several fake servers at once (a user with several GPU boxes)."""
    with ExitStack() as stack:
        yield [stack.enter_context(running_fake_comfyui(state)) for state in states]
