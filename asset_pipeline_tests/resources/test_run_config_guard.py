"""Run config can never weaken the caps, move the ledger or switch the backend (issue 11, invariant 4).

Driven as a user does: the real `dagster asset materialize --config-json` against the fake Replicate
server, with the operator's caps in ASSET_PIPELINE_* variables. A partial override keeps every other
field at the operator's value (the backend, the token bound with dg.EnvVar, the caps, the ledger in
the data dir); raising a cap or changing a fixed field fails the run at resource setup, naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.ledger.database import history_rows, ledger_engine
from asset_pipeline.ledger.schema import budget_entries
from asset_pipeline_tests.cli.test_dagster_cli import image_events
from asset_pipeline_tests.cli_fixtures import PROJECT
from asset_pipeline_tests.fake_replicate.fixtures import TOKEN


@pytest.fixture
def operator_env(cli_env: dict[str, str], fake_replicate) -> dict[str, str]:
    """The operator's environment: Replicate through the fake, a $1 total cap, ledger in the data dir."""
    return {**cli_env, "REPLICATE_BASE_URL": fake_replicate.base_url, "REPLICATE_API_TOKEN": TOKEN,
            "ASSET_PIPELINE_BACKEND": "replicate", "ASSET_PIPELINE_BUDGET_TOTAL_USD": "1",
            "ASSET_PIPELINE_POLL_INTERVAL_S": "0.02", "ASSET_PIPELINE_BACKOFF_BASE_S": "0.01",
            "ASSET_PIPELINE_MAX_ATTEMPTS": "1", "ASSET_PIPELINE_HUB_ENABLED": "false"}


def materialize(run_cli, env: dict[str, str], config: dict) -> tuple[int, str]:
    run_config = {"resources": {"image_generator": {"config": config}}}
    done = run_cli("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions", "--select", "images",
                   "--partition", "img-01", "--config-json", json.dumps(run_config), env=env)
    return done.returncode, done.stdout + done.stderr


def run_failure(home: str) -> str:
    """The message of the run's resource-initialisation failure (the `dg.Failure` raised at setup)."""
    with dg.DagsterInstance.from_config(home) as instance:
        [record] = instance.get_run_records()
        events = instance.all_logs(record.dagster_run.run_id)
    failures = [e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert failures and not [e for e in events if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START]
    error = failures[0].dagster_event.event_specific_data.error
    while error.cause is not None and "Failure" not in error.message:
        error = error.cause
    return error.message


def test_overriding_one_knob_keeps_the_operators_backend_token_caps_and_ledger(run_cli, operator_env, fake_replicate) -> None:
    code, output = materialize(run_cli, operator_env, {"max_predict_seconds": 120})
    assert code == 0, output[-3000:]
    [meta] = image_events(operator_env["DAGSTER_HOME"]).values()
    assert meta["backend"] == "replicate" and meta["cost_usd"] > 0  # not silently the placeholder
    assert fake_replicate.created_total == 1  # the token (dg.EnvVar) was resolved, not its name sent
    rows = history_rows(ledger_engine(f"sqlite:///{Path(operator_env['ASSET_PIPELINE_DATA_DIR']) / 'ledger.db'}"), budget_entries)
    assert any(row["kind"] == "charge" for row in rows)
    assert not (PROJECT / "asset_pipeline_ledger.db").exists()


def test_a_tiny_operator_cap_holds_under_a_partial_override(run_cli, operator_env, fake_replicate) -> None:
    env = {**operator_env, "ASSET_PIPELINE_BUDGET_TOTAL_USD": "0.001"}
    code, output = materialize(run_cli, env, {"max_predict_seconds": 60})
    assert code != 0
    assert "budget" in output.lower() and fake_replicate.created_total == 0


def test_a_lowered_cap_applies(run_cli, operator_env, fake_replicate) -> None:
    code, output = materialize(run_cli, operator_env, {"budget": {"total_usd": 0.002}})  # one flux image costs $0.003
    assert code != 0
    assert "budget exhausted" in output.lower() and fake_replicate.created_total == 0


@pytest.mark.parametrize(("config", "field"), [
    ({"budget": {"total_usd": 5.0}}, "image_generator.budget.total_usd: run config may only lower it"),
    ({"budget": {"daily_usd": 50.0}, "max_predict_seconds": 30},
     "image_generator.budget.daily_usd: run config may only lower it"),
    ({"backend": "placeholder"}, "image_generator.backend: run config may not change it; the operator sets it with ASSET_PIPELINE_BACKEND"),
    ({"database_url": "sqlite:///elsewhere.db"}, "image_generator.database_url: run config may not change it"),
    ({"prices": {"black-forest-labs/flux-schnell": {"per_image_usd": 0.0}}}, "image_generator.prices: run config may not change it"),
])
def test_loosening_run_config_fails_at_setup_naming_the_field(run_cli, operator_env, fake_replicate, config, field) -> None:
    code, output = materialize(run_cli, operator_env, config)
    assert code != 0
    message = run_failure(operator_env["DAGSTER_HOME"])
    assert message.startswith(f"dagster._core.definitions.events.Failure: {field}") and "\n" not in message.strip()
    assert field in output
    assert fake_replicate.created_total == 0
    assert not (PROJECT / "elsewhere.db").exists()


def _init_failure(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RESOURCE_INIT_FAILURE]
    return str(failure.event_specific_data.error)


@pytest.mark.parametrize(("resource", "config", "field"), [
    ("progress_hub", {"url": "http://attacker.example:4500"}, "progress_hub.url: run config may not change it"),
    ("progress_hub", {"token": "guessed"}, "progress_hub.token: run config may not change it"),
    ("image_store", {"root": "/tmp/elsewhere"}, "image_store.root: run config may not change it"),
    ("image_generator", {"diffusers": {"gpu_hour_usd": 0.0}}, "image_generator.diffusers.gpu_hour_usd: run config may not change it"),
    ("image_generator", {"retries": {"max_retry_spend_usd": 10.0}},
     "image_generator.retries.max_retry_spend_usd: run config may only lower it"),
    ("ledger", {"database_url": "sqlite:////tmp/elsewhere.db"}, "ledger.database_url: run config may not change it"),
    ("ledger", {"budget": {"daily_usd": 0.5}}, "ledger.budget: run config may not change it"),
    ("image_generator", {"comfyui": {"urls": "http://attacker.example:8188"}}, "image_generator.comfyui.urls: run config may not change it"),
    ("image_generator", {"comfyui": {"workflow": "/etc/passwd"}}, "image_generator.comfyui.workflow: run config may not change it"),
    ("image_generator", {"comfyui": {"max_job_seconds": 900}},
     "image_generator.comfyui.max_job_seconds: run config may only lower it: 900 is above the operator's 600 "
     "(raise ASSET_PIPELINE_COMFYUI_MAX_JOB_SECONDS in the environment instead)"),
    ("image_generator", {"max_predict_seconds": 3000}, "image_generator.max_predict_seconds: run config may only lower it"),
    ("image_generator", {"diffusers": {"max_render_seconds": 6000}},
     "image_generator.diffusers.max_render_seconds: run config may only lower it"),
])
def test_fixed_fields_of_every_resource_are_refused_in_process(
    catalog_path: Path, data_dir: Path, instance, monkeypatch: pytest.MonkeyPatch, resource: str, config: dict, field: str
) -> None:
    from asset_pipeline_testing.helpers import pipeline_defs

    monkeypatch.setenv("ASSET_PIPELINE_HUB_TOKEN", "hub-secret-token")
    monkeypatch.setenv("ASSET_PIPELINE_GPU_HOUR_USD", "2.5")
    defs = pipeline_defs(catalog_path, data_dir, gpu_hour_usd=2.5)
    selection = ["spend_report"] if resource == "ledger" else ["images"]
    result = dg.materialize(list(defs.assets), selection=selection, instance=instance, resources=defs.resources,
                            partition_key=None if resource == "ledger" else "img-00", raise_on_error=False,
                            run_config={"resources": {resource: {"config": config}}})
    assert not result.success and field in _init_failure(result)
    assert not (data_dir / "images").exists() and not Path("/tmp/elsewhere").exists()
    assert not Path("/tmp/elsewhere.db").exists() and not (data_dir / "spend_report.json").exists()


def test_a_partial_hub_override_keeps_the_token_bound_with_env_var(
    catalog_path: Path, data_dir: Path, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster copies an unresolved dg.EnvVar into a partially overridden resource; setup re-reads it."""
    from asset_pipeline.resources.progress_hub import ProgressHub
    from asset_pipeline_testing.helpers import pipeline_defs

    monkeypatch.setenv("ASSET_PIPELINE_HUB_TOKEN", "hub-secret-token")
    seen: list[tuple[str | None, float]] = []
    setup = ProgressHub.setup_for_execution

    def recording_setup(self: ProgressHub, context: dg.InitResourceContext) -> None:
        setup(self, context)
        seen.append((self.token, self.linger_s))

    monkeypatch.setattr(ProgressHub, "setup_for_execution", recording_setup)
    defs = pipeline_defs(catalog_path, data_dir)
    result = dg.materialize(list(defs.assets), selection=["images"], instance=instance, resources=defs.resources,
                            partition_key="img-00", raise_on_error=False,
                            run_config={"resources": {"progress_hub": {"config": {"linger_s": 0.2}}}})
    assert result.success
    assert seen == [("hub-secret-token", 0.2)]


@pytest.mark.parametrize("config", [{"max_predict_seconds": 5}, {"diffusers": {"attention_slicing": True}}])
def test_a_partial_override_keeps_the_operators_nested_diffusers_settings(
    catalog_path: Path, data_dir: Path, instance, monkeypatch: pytest.MonkeyPatch, config: dict
) -> None:
    """The operator's (here explicit) GPU price and device survive; Dagster alone would reset them."""
    from asset_pipeline.resources.image_generator import ImageGenerator
    from asset_pipeline_testing.helpers import pipeline_defs

    seen = []
    setup = ImageGenerator.setup_for_execution

    def recording_setup(self: ImageGenerator, context: dg.InitResourceContext) -> None:
        setup(self, context)
        seen.append(self.diffusers)

    monkeypatch.setattr(ImageGenerator, "setup_for_execution", recording_setup)
    defs = pipeline_defs(catalog_path, data_dir, gpu_hour_usd=2.5, diffusers_device="cpu")
    result = dg.materialize(list(defs.assets), selection=["images"], instance=instance, resources=defs.resources,
                            partition_key="img-00", raise_on_error=False,
                            run_config={"resources": {"image_generator": {"config": config}}})
    assert result.success
    [options] = seen
    assert (options.gpu_hour_usd, options.device) == (2.5, "cpu")
    assert options.attention_slicing == bool(config.get("diffusers"))
