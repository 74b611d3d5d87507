"""The ComfyUI backend against fake ComfyUI servers on loopback, through real Dagster range runs:
generation, fitting, caching and the workflow in the request hash, metering against the fake's
bill (money invariants), spreading over servers with one job at a time, and per-node progress."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

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
