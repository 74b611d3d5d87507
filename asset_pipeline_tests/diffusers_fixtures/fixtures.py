"""pytest fixtures: tiny SDXL pipelines on disk (built once per session) and a generator over them."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from asset_pipeline_testing.tiny_sdxl import save_tiny_sdxl


@dataclass(frozen=True)
class TinySDXL:
    base: Path
    refiner: Path
    heun_base: Path  # the base with a second-order scheduler: more callbacks than steps


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> TinySDXL:
    root = tmp_path_factory.mktemp("tiny_sdxl")
    save_tiny_sdxl(root / "base", root / "refiner")
    heun = root / "heun-base"
    shutil.copytree(root / "base", heun)
    for name, edit in (("model_index.json", lambda c: c.update(scheduler=["diffusers", "HeunDiscreteScheduler"])),
                       ("scheduler/scheduler_config.json", lambda c: c.update(_class_name="HeunDiscreteScheduler"))):
        config = json.loads((heun / name).read_text())
        edit(config)
        (heun / name).write_text(json.dumps(config))
    return TinySDXL(root / "base", root / "refiner", heun)


@pytest.fixture(autouse=True)
def _unload_pipelines_after_test(request: pytest.FixtureRequest):
    """Tests that loaded a pipeline give it back, so each test sees the options it asked for."""
    yield
    if "tiny_sdxl" in request.fixturenames:
        from asset_pipeline.generation.diffusers_pipelines import unload_all

        unload_all()
