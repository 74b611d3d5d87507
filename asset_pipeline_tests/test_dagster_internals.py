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


def test_the_hand_on_output_logs_no_materialization_and_runs_the_next_step() -> None:
    """`prompts` ends with `Output(None, metadata={SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION: True})`:
    Dagster must still count the output (the downstream step runs) but log no materialization for it."""
    partitions = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=partitions, dagster_type=dg.Nothing, output_required=False)
    def upstream(context):
        for key in context.partition_keys:
            yield dg.AssetMaterialization(asset_key="upstream", partition=key)
        yield dg.Output(None, metadata={dagster_internals.SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION: True})

    @dg.asset(partitions_def=partitions, deps=[upstream])
    def downstream() -> None:
        return None

    result = dg.materialize([upstream, downstream], partition_key="a")
    assert result.success
    keys = [e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    assert keys.count("upstream") == 1 and keys.count("downstream") == 1  # ours only; none for the Output
