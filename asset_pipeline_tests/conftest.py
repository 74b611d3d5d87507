"""Fixtures shared by the whole suite: a temporary catalog, data dir and Dagster instance."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from asset_pipeline_testing.helpers import small_entries, write_catalog


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.yaml", small_entries())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


pytest_plugins = [
    "asset_pipeline_tests.cli_fixtures",
    "asset_pipeline_tests.fake_replicate.fixtures",
    "asset_pipeline_tests.diffusers_fixtures.fixtures",
    "asset_pipeline_tests.fake_openai.fixtures",
]
