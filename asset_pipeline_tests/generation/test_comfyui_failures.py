"""Each ComfyUI failure class through a real Dagster range run on loopback: node_errors fail at once
naming node and input, out of memory retries with fewer steps, a server that is down is transient,
a job lost by a restart is queued again, a lost /prompt answer is found instead of queued twice;
the ledger equals the fake's bill after every one (money invariants)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from asset_pipeline.generation.comfyui_workflow import DEFAULT_WORKFLOW
from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyui
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.helpers import materializations, materialize, write_catalog
from asset_pipeline_testing.serving import free_port
from asset_pipeline_tests.generation.comfyui_support import (
    attempts,
    charged,
    comfy_defs,
    entries,
    failure_message,
    violations,
)


def workflow_copy(tmp_path: Path, edit) -> Path:
    nodes = json.loads(DEFAULT_WORKFLOW.read_text())
    edit(nodes)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(nodes))
    (tmp_path / "edited.mapping.yaml").write_text(DEFAULT_WORKFLOW.with_name("sdxl_text_to_image.mapping.yaml").read_text())
    return path


def test_node_errors_fail_at_once_naming_node_and_input(tmp_path: Path, data_dir: Path, instance) -> None:
    workflow = workflow_copy(tmp_path, lambda nodes: nodes["5"]["inputs"].update(batch_size=0))
    with running_fake_comfyui(FakeComfyState(job_seconds=0.05)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server], comfyui_workflow=workflow), instance,
                             partition="img-00")
        assert not result.success
        message = failure_message(result)
        assert "node 5 (EmptyLatentImage) input 'batch_size': Value smaller than min" in message
        assert [(a["failure_class"], a["strategy"]) for a in attempts(data_dir)] == [("invalid_input", "fail")]
        assert server.submitted == [] and charged(data_dir) == 0.0
        assert violations(data_dir, [server]) == []


def test_out_of_memory_retries_with_fewer_steps_and_charges_the_gpu_time(tmp_path: Path, data_dir: Path,
                                                                         instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.1)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1, prompt="a lighthouse [[oom]]", steps=24))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        assert not result.success
        assert "ran out of memory in node 3 (KSampler)" in failure_message(result)
        tried = [server.history[p]["prompt"][2]["3"]["inputs"]["steps"] for p in server.submitted]
        assert tried == [24, 12, 10][:len(tried)] and len(tried) >= 2
        assert attempts(data_dir)[0]["failure_class"] == "out_of_resources"
        assert charged(data_dir) > 0  # the GPU time up to the error is paid
        assert violations(data_dir, [server]) == []


def test_a_node_that_raises_a_value_error_fails_at_once_and_its_gpu_time_is_paid(tmp_path: Path, data_dir: Path,
                                                                               instance) -> None:
    """The same inputs raise the same ValueError: queueing the identical prompt again would pay again."""
    with running_fake_comfyui(FakeComfyState(job_seconds=0.1)) as server:
        catalog = write_catalog(tmp_path / "c.yaml", entries(1, prompt="a lighthouse [[valueerror]]"))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        assert not result.success
        assert "failed in node 3 (KSampler): ValueError: image size must be a multiple of 8" in failure_message(result)
        assert len(server.submitted) == 1
        assert [(a["failure_class"], a["strategy"]) for a in attempts(data_dir)] == [("invalid_input", "fail")]
        assert charged(data_dir) > 0 and violations(data_dir, [server]) == []


def test_a_server_that_is_down_is_transient_and_nothing_is_charged(tmp_path: Path, data_dir: Path, instance) -> None:
    dead = FakeComfyState(base_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    catalog = write_catalog(tmp_path / "c.yaml", entries(1))
    result = materialize(comfy_defs(catalog, data_dir, [dead], max_attempts=2), instance, partition="img-00")
    assert not result.success
    assert "is down or restarting" in failure_message(result)
    assert {a["failure_class"] for a in attempts(data_dir)} == {"transient"}
    assert charged(data_dir) == 0.0 and violations(data_dir, [dead]) == []


def test_a_job_lost_in_a_restart_is_queued_again(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=1.0)) as server:
        def restart_once_running() -> None:
            deadline = time.monotonic() + 30
            while server.running is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
            server.restart()

        restarter = threading.Thread(target=restart_once_running)
        restarter.start()
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        restarter.join()
        assert result.success, failure_message(result)
        assert server.restarts == 1 and len(server.submitted) == 2
        [attempt] = attempts(data_dir)
        assert attempt["failure_class"] == "transient" and "vanished from the queue" in attempt["detail"]
        assert materializations(result)["img-00"]["prediction_id"].startswith(server.submitted[1])
        assert violations(data_dir, [server]) == []


def test_a_lost_prompt_answer_is_found_not_queued_twice(tmp_path: Path, data_dir: Path, instance) -> None:
    with running_fake_comfyui(FakeComfyState(job_seconds=0.1)) as server:
        server.drop_next_create_answer()
        catalog = write_catalog(tmp_path / "c.yaml", entries(1))
        result = materialize(comfy_defs(catalog, data_dir, [server]), instance, partition="img-00")
        assert result.success, failure_message(result)
        assert len(server.submitted) == 1  # adopted through extra_data's request hash
        assert list(server.creations.values()) == [1]
        assert materializations(result)["img-00"]["prediction_id"] == f"{server.submitted[0]}@{server.base_url}"
        assert violations(data_dir, [server]) == []
