"""Every private Dagster name the project uses, in one place (issue #10).

Dagster exports no public API for these: lineage tags written the way Dagster's own materializations
write them (assets/lineage.py), backfill submission and asset-graph subsets (retry_selection.py),
the partition-status cache the UI reads (partition_status.py), and the config-class data of a
pluggable event log (instance_storage.py), and the output marker that lets the `prompts` step hand
the run on to `images` without Dagster logging a second, range-wide materialization (assets/prompts.py). Import them from here only; `asset_pipeline_tests/
test_dagster_internals.py` pins each name, so a Dagster upgrade that moves one fails in one spot.
"""

from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.source_asset import SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value
from dagster._core.utils import make_new_backfill_id
from dagster._serdes import ConfigurableClassData

__all__ = [
    "CODE_VERSION_TAG",
    "DATA_VERSION_IS_USER_PROVIDED_TAG",
    "DATA_VERSION_TAG",
    "AssetCheckEvaluationTargetMaterializationData",
    "AssetGraphSubset",
    "AssetKeyPartitionKey",
    "BulkActionStatus",
    "ConfigurableClassData",
    "PartitionBackfill",
    "SYSTEM_METADATA_KEY_SOURCE_ASSET_OBSERVATION",
    "get_and_update_asset_status_cache_value",
    "get_input_data_version_tag",
    "get_input_event_pointer_tag",
    "make_new_backfill_id",
]
