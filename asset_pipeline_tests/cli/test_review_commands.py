"""`asset-pipeline review list | approve | reject`, `estimate --select rejected` and
`retry-failed --rejected --dry-run`, run as console scripts on a project-like environment: a
rejection turns the partition stale in Dagster, re-rendering makes a new take whose image is
unreviewed (the rejection does not carry over), and hostile arguments are refused by field."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from asset_pipeline.assets.keys import IMAGES, PROMPTS
from asset_pipeline.assets.review_checks import APPROVED
from asset_pipeline_testing.helpers import materialize, pipeline_defs


@pytest.fixture
def reviewed_env(cli_env: dict[str, str], catalog_path: Path) -> dict[str, str]:
    defs = pipeline_defs(catalog_path, Path(cli_env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        assert materialize(defs, instance, first="img-00", last="img-02").success
    return cli_env


def _json(run_cli, *args: str, env: dict[str, str]) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli("asset-pipeline", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _stale(env: dict[str, str], catalog_path: Path, key: str) -> StaleStatus:
    defs = pipeline_defs(catalog_path, Path(env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        # Dagster's own test helper around the resolver the UI uses for its "stale" badge.
        # A new take changes the partition's `image_catalog` version: its `prompts` partition (the
        # asset right below) turns stale, and `images` once the prompt is re-written.
        return get_stale_status_resolver(instance, list(defs.assets or [])).get_status(PROMPTS, key)


def test_reject_approve_and_a_new_take(reviewed_env: dict[str, str], catalog_path: Path, run_cli) -> None:
    env = reviewed_env
    listed = _json(run_cli, "review", "list", "--json", env=env)
    assert listed["counts"] == {"unreviewed": 3, "rejected": 0, "approved": 0}
    first = {item["partition_key"]: item for item in listed["items"]}["img-01"]
    assert first["take"] == 0 and first["prompt"] == "a test icon number 1" and len(first["sha256"]) == 64
    assert _stale(env, catalog_path, "img-01") == StaleStatus.FRESH

    approved = _json(run_cli, "review", "approve", "img-00", "--json", env=env)
    assert approved["decision"] == "approved" and approved["next_take"] == 0
    rejected = _json(run_cli, "review", "reject", "img-01", "--sha256", first["sha256"], "--note", "text artefacts",
                     "--prompt-addition", "no text in the image", "--json", env=env)
    assert (rejected["decision"], rejected["next_take"], rejected["take_changed"]) == ("rejected", 1, True)

    # Dagster's own staleness: the image_catalog partition has a new data version (spec hash + take).
    assert _stale(env, catalog_path, "img-01") == StaleStatus.STALE
    assert _stale(env, catalog_path, "img-00") == StaleStatus.FRESH
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(IMAGES, APPROVED), limit=20)
        assert checks  # the verdicts were reported as `approved` check results
    listed = _json(run_cli, "review", "list", "--state", "rejected", "--json", env=env)
    [due] = listed["items"]
    assert (due["partition_key"], due["note"], due["next_take"], due["rerender_due"]) == ("img-01", "text artefacts", 1, True)
    assert "img-01" in run_cli("asset-pipeline", "review", "list", env=env).stdout

    estimate = _json(run_cli, "estimate", "--select", "rejected", "--json", env=env)
    assert (estimate["partitions"], estimate["to_generate"]) == (1, 1)  # the new take is not in the store
    dry = _json(run_cli, "retry-failed", "--rejected", "--dry-run", "--json", env=env)
    assert (dry["failed"], dry["selection"], dry["backfill_id"]) == (["img-01"], "rejected", None)

    # The new take (what the re-render backfill runs) replaces the image; the verdict stays with the old one.
    defs = pipeline_defs(catalog_path, Path(env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        result = materialize(defs, instance, partition="img-01")
        assert result.success
        [event] = [e for e in result.get_asset_materialization_events() if e.materialization.asset_key == IMAGES]
        metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["take"] == 1 and metadata["sha256"] != first["sha256"]
    assert metadata["prompt"].endswith("no text in the image")
    assert _stale(env, catalog_path, "img-01") == StaleStatus.FRESH
    now = {item["partition_key"]: item for item in _json(run_cli, "review", "list", "--json", env=env)["items"]}
    assert (now["img-01"]["state"], now["img-01"]["take"], now["img-01"]["rerender_due"]) == ("unreviewed", 1, False)
    assert now["img-00"]["state"] == "approved"
    assert _json(run_cli, "retry-failed", "--rejected", "--dry-run", "--json", env=env)["failed"] == []

    # A verdict naming the replaced image is refused: it is not the current one.
    stale_verdict = run_cli("asset-pipeline", "review", "approve", "img-01", "--sha256", first["sha256"], env=env)
    assert stale_verdict.returncode == 2 and "is not the current image of 'img-01'" in stale_verdict.stderr


HOSTILE = [
    (["reject", "../../etc"], "partition_key: not a catalog id"),
    (["reject", "img-99"], "partition_key: 'img-99' is not in the catalog"),
    (["approve", "img-00", "--sha256", "f" * 64], "sha256: ffffffffffff… is not the current image"),
    (["approve", "img-00", "--sha256", "zz"], "sha256: expected 64 lowercase hex digits"),
    (["reject", "img-00", "--note", "n" * 100_000], "note: 100000 characters; at most 2000"),
    (["reject", "img-00", "--prompt-addition", "bad\u202etext"], "prompt_addition: must not contain"),
    (["list", "--state", "whatever"], "Invalid value for '--state'"),
]


def test_hostile_review_arguments(reviewed_env: dict[str, str], run_cli) -> None:
    for args, needle in HOSTILE:
        result = run_cli("asset-pipeline", "review", *args, env=reviewed_env)
        assert result.returncode == 2, (args, result.stdout)
        assert needle in result.stderr and len(result.stderr) < 600, (args, result.stderr)
    assert json.loads(run_cli("asset-pipeline", "review", "list", "--json", env=reviewed_env).stdout)["counts"][
        "unreviewed"] == 3
