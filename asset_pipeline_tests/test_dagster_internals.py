"""Dagster's private names live in `asset_pipeline.dagster_internals` only, and each still exists:
a Dagster upgrade that moves one fails here, in one spot, instead of somewhere in a run."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

import asset_pipeline
from asset_pipeline import dagster_internals

PACKAGE = Path(asset_pipeline.__file__).parent
PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)


def test_every_pinned_name_resolves() -> None:
    for name in dagster_internals.__all__:
        assert getattr(dagster_internals, name) is not None, name


def test_no_other_module_imports_dagster_internals() -> None:
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.name != "dagster_internals.py" and PRIVATE_IMPORT.search(path.read_text())]
    assert offenders == []


def test_the_pinned_names_behave_as_the_project_uses_them() -> None:
    """The few calls whose shape we depend on: a backfill id, the lineage tag helpers."""
    assert isinstance(dagster_internals.make_new_backfill_id(), str)
    assert dagster_internals.DATA_VERSION_TAG == "dagster/data_version"
    tag = dagster_internals.get_input_data_version_tag(dg.AssetKey("image_catalog"))
    assert tag.startswith("dagster/input_data_version/")
