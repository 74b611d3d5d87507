"""The ComfyUI backend against fake ComfyUI servers on loopback, through real Dagster range runs:
generation, fitting, caching and the workflow in the request hash, metering against the fake's
bill (money invariants), spreading over servers with one job at a time, and per-node progress."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from asset_pipeline.generation.backend import RenderSession
from asset_pipeline.generation.comfyui_backend import ComfyUIBackend, ComfyUIConfig
from asset_pipeline.generation.comfyui_workflow import DEFAULT_WORKFLOW, load_workflow
from asset_pipeline.generation.progress import StepProgress
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui, running_fake_comfyuis
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import materializations, materialize, write_catalog
from asset_pipeline_tests.generation.comfyui_support import charged, comfy_defs, entries, violations


def test_a_range_run_generates_stores_and_charges_gpu_time(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.15)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(3))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, first="img-00", last="img-02")
        assert result.success
        made = materializations(result)
        assert sorted(made) == ["img-00", "img-01", "img-02"]
        for meta in made.values():
            assert meta["backend"] == "comfyui" and meta["model"] == "comfyui:sdxl_text_to_image"
            assert 0.0001 < meta["cost_usd"] < 0.001  # ~0.15 GPU seconds at $0.001/s
            assert (Image.open(meta["path"]).size) == (96, 64)
        assert len(server.submitted) == 3 and server.max_running_seen == 1
        prompt = server.history[server.submitted[0]]["prompt"][2]
        assert prompt["6"]["inputs"]["text"].startswith("a lighthouse number") and prompt["3"]["inputs"]["steps"] == 12
        assert charged(data_dir) == pytest.approx(server.bill_usd, abs=1e-5)
        assert violations(data_dir, [server]) == []


def test_a_rerun_is_a_cache_hit_and_an_edited_workflow_regenerates(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.05)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(2))
        assert materialize(comfy_defs(catalog, data_dir, [server]), instance, first="img-00", last="img-01").success
        again = materialize(comfy_defs(catalog, data_dir, [server]), instance, first="img-00", last="img-01")
        assert again.success and all(m["cache_hit"] for m in materializations(again).values())
        assert len(server.submitted) == 2
        # The same workflow, edited (another sampler): every image's request hash changes.
        workflow = json.loads(DEFAULT_WORKFLOW.read_text())
        workflow["3"]["inputs"]["sampler_name"] = "dpmpp_2m"
        edited = tmp_path / "mine.json"
        edited.write_text(json.dumps(workflow))
        shutil.copy(DEFAULT_WORKFLOW.with_name("sdxl_text_to_image.mapping.yaml"), tmp_path / "mine.mapping.yaml")
        defs = comfy_defs(catalog, data_dir, [server], comfyui_workflow=edited)
        regenerated = materialize(defs, instance, first="img-00", last="img-01")
        assert regenerated.success and not any(m["cache_hit"] for m in materializations(regenerated).values())
        assert len(server.submitted) == 4
        assert server.history[server.submitted[-1]]["prompt"][2]["3"]["inputs"]["sampler_name"] == "dpmpp_2m"
        assert violations(data_dir, [server]) == []


def test_images_are_spread_over_servers_one_job_at_a_time_with_bounded_queues(tmp_path: Path, data_dir: Path,
                                                                              instance) -> None:
    with running_fake_comfyuis([FakeComfyState(job_seconds=0.2) for _ in range(3)]) as servers:
        catalog = write_catalog(tmp_path / "c.yaml", entries(9))
        defs = comfy_defs(catalog, data_dir, servers, max_concurrency=8, comfyui_queue_depth=2)
        assert materialize(defs, instance, first="img-00", last="img-08").success
        assert sorted(len(s.submitted) for s in servers) == [3, 3, 3]
        assert all(s.max_in_server <= 2 for s in servers)
        assert violations(data_dir, servers) == []


def test_an_upscaled_output_is_fitted_and_the_original_kept(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.05, output_scale=2.0)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        assert result.success
        meta = materializations(result)["img-00"]
        assert Image.open(meta["path"]).size == (96, 64)
        record = json.loads(next((data_dir / "requests").iterdir()).read_text())
        assert Image.open(record["original_path"]).size == (192, 128)
        assert violations(data_dir, [server]) == []


def test_per_node_progress_becomes_step_reports_with_an_eta(tmp_path: Path) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.3)) as server:
        backend = ComfyUIBackend(ComfyUIConfig(urls=[server.base_url], workflow=load_workflow(None), gpu_hour_usd=3.6,
                                               max_job_seconds=10, poll_interval_s=0.02))
        request = GenerationRequest("img-00", "hero", "comfyui", backend.default_model, "a lighthouse", "", 96, 64, 1,
                                    12, 6.0, backend.request_variant)
        reports: list[StepProgress] = []
        created: list[str] = []
        rendered = backend.render(request, RenderSession(on_created=created.append, on_progress=reports.append))
        backend.close()
    assert rendered.prediction_id == created[0] and created[0].endswith("@" + server.base_url)
    assert [r.current_step for r in reports] == list(range(1, 13))
    assert {(r.stage, r.total_steps) for r in reports} == {("KSampler", 12)}
    assert reports[-1].percentage == 100.0 and reports[5].eta_s is not None and reports[5].eta_s > 0
    assert rendered.cost_usd == pytest.approx(server.bill_usd)


def test_a_job_queued_behind_another_counts_its_eta_from_its_own_start(tmp_path: Path) -> None:
    """The second of two prompts waits a whole job in the server's queue; its first steps' elapsed
    time and ETA are its own pace, not the wait (seen against a real ComfyUI: ETA 233 s for 7 s left)."""
    import threading

    with running_fake_comfyui(FakeComfyState(job_seconds=1.0)) as server:
        backend = ComfyUIBackend(ComfyUIConfig(urls=[server.base_url], workflow=load_workflow(None), gpu_hour_usd=3.6,
                                               max_job_seconds=10, queue_depth=2, poll_interval_s=0.02))
        reports: dict[str, list[StepProgress]] = {"img-00": [], "img-01": []}

        def render(key: str, seed: int) -> None:
            request = GenerationRequest(key, "hero", "comfyui", backend.default_model, f"a lighthouse {seed}", "",
                                        96, 64, seed, 10, 6.0, backend.request_variant)
            backend.render(request, RenderSession(on_created=lambda _id: None, on_progress=reports[key].append))

        first = threading.Thread(target=render, args=("img-00", 1))
        first.start()
        while not server.submitted:
            threading.Event().wait(0.01)
        render("img-01", 2)  # queued behind img-00 for about a second
        first.join()
        backend.close()
    queued = reports["img-01"]
    assert [r.current_step for r in queued] == list(range(1, 11))
    assert queued[0].elapsed_s < 0.5, queued[0]  # not the ~1 s it waited
    assert queued[1].eta_s is not None and queued[1].eta_s < 2.0, queued[1]  # ~0.8 s of a 1 s job remain
