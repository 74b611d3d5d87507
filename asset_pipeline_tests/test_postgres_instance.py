"""The same range run against a PostgreSQL-backed Dagster instance (dagster-postgres), in process and via the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline.assets.keys import IMAGES
from asset_pipeline.assets.lineage import latest_materializations
from asset_pipeline_testing.helpers import FailingGenerator, image_statuses, materialize, pipeline_defs
from asset_pipeline_testing.postgres import fresh_database

PROJECT = Path(__file__).parents[1]


@pytest.fixture
def postgres_url():
    with fresh_database() as url:
        yield url


def test_range_with_failures_on_postgres(postgres_url: str, catalog_path: Path, data_dir: Path) -> None:
    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        defs = pipeline_defs(catalog_path, data_dir)
        flaky = FailingGenerator(failing_ids=["img-02"])
        assert not materialize(defs, instance, first="img-00", last="img-05", resources={"image_generator": flaky}).success
        statuses = image_statuses(defs, instance)
        assert statuses.materialized == {"img-00", "img-01", "img-03", "img-04", "img-05"}
        assert statuses.failed == {"img-02"}

        assert materialize(defs, instance, first="img-00", last="img-05").success
        assert image_statuses(defs, instance).materialized == {f"img-{i:02d}" for i in range(6)}


def test_cli_uses_postgres_when_dagster_postgres_url_is_set(postgres_url: str, run_cli, cli_env) -> None:
    home = Path(cli_env["DAGSTER_HOME"])
    shutil.copy(PROJECT / "dagster.postgres.yaml", home / "dagster.yaml")  # what `make instance` does
    env = {**cli_env, "DAGSTER_POSTGRES_URL": postgres_url}
    done = run_cli("dagster", "asset", "materialize", "-m", "asset_pipeline.definitions",
                   "--select", "images", "--partition-range", "img-00...img-02", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    overrides = {"storage": {"postgres": {"postgres_url": postgres_url}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        assert sorted(latest_materializations(instance, IMAGES)) == ["img-00", "img-01", "img-02"]
    assert not list(home.rglob("*.db"))  # no SQLite run or event storage was created
