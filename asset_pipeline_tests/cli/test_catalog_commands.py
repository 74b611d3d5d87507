"""`asset-pipeline catalog validate|sample-range` and `report --json` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from asset_pipeline_testing.helpers import write_catalog


def test_validate_a_good_catalog(run_cli, catalog_path: Path) -> None:
    done = run_cli("asset-pipeline", "catalog", "validate", str(catalog_path))
    assert done.returncode == 0
    assert done.stdout.strip() == f"{catalog_path}: valid, 6 images (icon 6)"


def test_validate_defaults_to_the_configured_then_bundled_catalog(run_cli, cli_env) -> None:
    assert "6 images" in run_cli("asset-pipeline", "catalog", "validate").stdout
    bundled_env = {k: v for k, v in cli_env.items() if k != "ASSET_PIPELINE_CATALOG"}
    done = run_cli("asset-pipeline", "catalog", "validate", "--json", env=bundled_env)
    assert done.returncode == 0 and json.loads(done.stdout)["images"] >= 480


def test_validate_a_bad_catalog_prints_each_problem_and_exits_1(run_cli, tmp_path: Path) -> None:
    bad = write_catalog(
        tmp_path / "bad.yaml",
        [{"id": "a/b", "category": "icon", "prompt": "x"}, {"id": "a/b", "category": "icon", "prompt": "y", "seed": -1}],
    )
    done = run_cli("asset-pipeline", "catalog", "validate", str(bad))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "invalid image catalog (3 problems):"
    assert lines[1].startswith(f"  - {bad}: entry 'a/b' (#0): field 'id': must be a slug")
    assert f"{bad}: entry 'a/b' (#1): field 'seed': Input should be greater than or equal to 0 (got -1)" in lines[3]

    as_json = json.loads(run_cli("asset-pipeline", "catalog", "validate", "--json", str(bad)).stdout)
    assert as_json["valid"] is False
    assert as_json["problems"][0] == {
        "file": str(bad), "entry": "'a/b' (#0)", "field": "id",
        "message": "must be a slug: lowercase letters, digits, '-' and '_', 1-80 characters, no path separators (got 'a/b')",
    }


def test_malformed_yaml_exits_1_with_the_file_name(run_cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("images: [\n")
    done = run_cli("asset-pipeline", "catalog", "validate", str(broken))
    assert done.returncode == 1 and f"{broken}: malformed YAML" in done.stderr


def test_sample_range_and_report_json(run_cli) -> None:
    assert run_cli("asset-pipeline", "catalog", "sample-range", "--count", "3").stdout.strip() == "img-00...img-02"
    rows = json.loads(run_cli("asset-pipeline", "report", "--json", "--partition", "img-00").stdout)
    assert rows == [{"key": "img-00", "status": "missing"}]


def test_report_lists_failed_partitions_from_the_instance(run_cli, cli_env, catalog_path: Path) -> None:
    import dagster as dg

    from asset_pipeline_testing.helpers import FailingGenerator, materialize, pipeline_defs

    defs = pipeline_defs(catalog_path, Path(cli_env["ASSET_PIPELINE_DATA_DIR"]))
    with dg.DagsterInstance.from_config(cli_env["DAGSTER_HOME"]) as instance:
        flaky = FailingGenerator(failing_ids=["img-01"])
        assert not materialize(defs, instance, first="img-00", last="img-02", resources={"image_generator": flaky}).success

    done = run_cli("asset-pipeline", "report", "--partition-range", "img-00...img-03")
    assert done.returncode == 0, done.stderr
    assert "Failed (1): img-01" in done.stdout
    assert "2 of 4 image(s) materialized, 0 cache hit(s)" in done.stdout
    rows = json.loads(run_cli("asset-pipeline", "report", "--json").stdout)
    assert [row["status"] for row in rows] == ["materialized", "failed", "materialized", "missing", "missing", "missing"]
