"""Device/dtype choice and model-directory checks of the diffusers backend (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.generation.diffusers_options import DiffusersOptions, checked_model_dir, choose_placement


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ({"cuda": True, "mps": False, "bf16": True}, ("cuda", "bfloat16")),
        ({"cuda": True, "mps": False, "bf16": False}, ("cuda", "float16")),
        ({"cuda": False, "mps": True, "bf16": False}, ("mps", "float16")),
        ({"cuda": False, "mps": False, "bf16": False}, ("cpu", "float32")),
    ],
)
def test_auto_placement_prefers_cuda_then_mps_then_cpu(machine: dict, expected: tuple) -> None:
    placement = choose_placement(DiffusersOptions(), **machine)
    assert (placement.device, placement.dtype) == expected


def test_overrides_are_honoured_and_checked() -> None:
    assert choose_placement(DiffusersOptions(device="cpu", dtype="bfloat16"), cuda=True, mps=False, bf16=True).device == "cpu"
    with pytest.raises(ConfigurationError, match="ASSET_PIPELINE_DIFFUSERS_DEVICE: 'cuda' is not available"):
        choose_placement(DiffusersOptions(device="cuda"), cuda=False, mps=False, bf16=False)
    with pytest.raises(ConfigurationError, match="CPU_OFFLOAD: CPU offload needs a cuda device"):
        choose_placement(DiffusersOptions(cpu_offload=True), cuda=False, mps=False, bf16=False)


def test_a_hub_id_is_a_configuration_error_not_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="'stabilityai/stable-diffusion-xl-base-1.0' looks like a Hugging Face hub id"):
        checked_model_dir("stabilityai/stable-diffusion-xl-base-1.0", variable="ASSET_PIPELINE_DIFFUSERS_MODEL")


def test_missing_and_non_pipeline_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=f"ASSET_PIPELINE_DIFFUSERS_MODEL: directory '{tmp_path / 'nope'}' does not exist"):
        checked_model_dir(str(tmp_path / "nope"), variable="ASSET_PIPELINE_DIFFUSERS_MODEL")
    with pytest.raises(ConfigurationError, match="is not a diffusers pipeline directory"):
        checked_model_dir(str(tmp_path), variable="ASSET_PIPELINE_DIFFUSERS_MODEL")
    with pytest.raises(ConfigurationError, match="needs a local SDXL directory"):
        checked_model_dir(None, variable="ASSET_PIPELINE_DIFFUSERS_MODEL")
