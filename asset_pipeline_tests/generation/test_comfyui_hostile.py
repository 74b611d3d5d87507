"""Hostile ComfyUI servers through real range runs: an endless /view body, garbage timing numbers,
an event stream that never ends a job. Every charge stays finite and within its reservation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import materialize, write_catalog
from asset_pipeline_tests.generation.comfyui_support import (
    attempts,
    comfy_defs,
    entries,
    failure_message,
    ledger,
    violations,
)


def charges(data_dir: Path) -> list[float]:
    return [e["amount_usd"] for e in ledger(data_dir).entries() if e["kind"] == "charge"]


def test_an_endless_view_body_is_refused_at_the_download_limit(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.05, huge_view=True)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server], max_download_mb=1), instance, partition="img-00")
        assert not result.success
        assert "the output is larger than 1 MB" in failure_message(result)
        assert [a["failure_class"] for a in attempts(data_dir)] == ["invalid_output"]  # not paid for again
        assert len(server.submitted) == 1
        assert violations(data_dir, [server]) == []  # the GPU time was billed and booked


@pytest.mark.parametrize("stamp", ["abc", math.nan, -1e18, 1e30])
def test_garbage_timing_is_replaced_by_the_time_seen_running(tmp_path: Path, data_dir: Path, instance, stamp) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.3, timestamps=stamp)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        assert result.success, failure_message(result)
        [charge] = charges(data_dir)
        assert math.isfinite(charge) and 0 < charge <= 20 * 0.001  # within the 20 s reservation
        assert charge == pytest.approx(server.bill_usd, abs=0.0003)  # seen on the event stream, ~0.3 s
        assert violations(data_dir, None) == []
        note = [e["reason"] for e in ledger(data_dir).entries() if e["kind"] == "charge"][0]
        assert "ComfyUI's own timing was unusable" in note


def test_an_event_stream_that_never_ends_a_job_is_stopped_at_the_longest_job(tmp_path: Path, data_dir: Path,
                                                                             instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.1, endless_ws=True)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        defs = comfy_defs(catalog, data_dir, [server], comfyui_max_job_seconds=1.0, max_attempts=2)
        result = materialize(defs, instance, partition="img-00")
        assert not result.success
        assert "ran over 1 s: prompt" in failure_message(result) and "interrupted" in failure_message(result)
        assert server.interrupts == 2 and server.running is None
        # The server ran each job a little past 1 s before the interrupt landed: never more than
        # the 1 s reserved is charged.
        assert charges(data_dir) == [pytest.approx(0.001), pytest.approx(0.001)] and server.bill_usd >= 0.002
        assert violations(data_dir, None) == []


def test_garbage_progress_numbers_never_reach_the_hub_as_garbage(tmp_path: Path) -> None:
    from asset_pipeline.generation.backend import RenderSession
    from asset_pipeline.generation.comfyui_backend import ComfyUIBackend, ComfyUIConfig
    from asset_pipeline.generation.comfyui_workflow import load_workflow
    from asset_pipeline.generation.request import GenerationRequest

    with running_fake_comfyui(FakeComfyState(job_seconds=0.2, garbage_progress=True)) as server:
        backend = ComfyUIBackend(ComfyUIConfig(urls=[server.base_url], workflow=load_workflow(None), gpu_hour_usd=3.6,
                                               max_job_seconds=10, poll_interval_s=0.02))
        request = GenerationRequest("img-00", "hero", "comfyui", backend.default_model, "a lighthouse", "", 96, 64, 1,
                                    10, 6.0, backend.request_variant)
        reports = []
        backend.render(request, RenderSession(on_progress=reports.append))
        backend.close()
    sane = [r for r in reports if r.stage == "KSampler"]
    assert [r.current_step for r in sane] == list(range(1, 11))
    others = [r for r in reports if r.stage != "KSampler"]  # the unknown node: a stage of its own, name cut short
    assert all(len(r.stage) <= 50 and r.stage.startswith("node no-such-node") for r in others)
    assert all(0 <= r.percentage <= 100 and math.isfinite(r.elapsed_s) for r in reports)
    assert all(r.total_steps == 10 for r in reports)
