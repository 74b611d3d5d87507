"""What `asset-pipeline hub` loads before serving: state rebuilt from the instance, the spend source."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asset_pipeline.errors import ConfigurationError
from asset_pipeline.hub.state import HubState
from asset_pipeline.settings import PipelineSettings


@dataclass(frozen=True)
class HubLimits:
    """How much the hub keeps in memory (see `HubState`)."""

    max_partitions: int = 20_000
    max_runs: int = 1_000
    snapshot_partitions: int = 1_000
    max_connections: int = 10_000  # WebSocket connections served at once by this process


# variable -> (HubLimits field, default, smallest allowed)
LIMIT_VARIABLES = {
    "ASSET_PIPELINE_HUB_MAX_PARTITIONS": ("max_partitions", 20_000, 1),
    "ASSET_PIPELINE_HUB_MAX_RUNS": ("max_runs", 1_000, 1),
    "ASSET_PIPELINE_HUB_SNAPSHOT_PARTITIONS": ("snapshot_partitions", 1_000, 0),
    "ASSET_PIPELINE_HUB_MAX_CONNECTIONS": ("max_connections", 10_000, 1),
}
REDIS_PREFIX_VARIABLE = "ASSET_PIPELINE_HUB_REDIS_PREFIX"


def shared_stream(environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The Redis URL the hub shares events through (None: this process alone) and its key prefix;
    Redis is pinged here so an unreachable one stops the hub with the variable's name."""
    environ = os.environ if environ is None else environ
    url = environ.get("ASSET_PIPELINE_REDIS_URL", "").strip() or None
    prefix = environ.get(REDIS_PREFIX_VARIABLE, "").strip() or "asset_pipeline:hub"
    if len(prefix) > 100 or not prefix.isascii() or not prefix.isprintable() or " " in prefix:
        raise ConfigurationError(REDIS_PREFIX_VARIABLE, "expected up to 100 printable ASCII characters, no spaces")
    if url is not None:
        from asset_pipeline.hub.redis_bus import check_reachable

        check_reachable(url)
    return url, prefix


def state_limits(environ: Mapping[str, str] | None = None) -> HubLimits:
    """The hub's memory bounds from the environment; ConfigurationError names a bad variable."""
    environ = os.environ if environ is None else environ
    limits: dict[str, int] = {}
    for variable, (name, default, smallest) in LIMIT_VARIABLES.items():
        text = environ.get(variable, "").strip()
        if not text:
            limits[name] = default
            continue
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= smallest):
            raise ConfigurationError(variable, f"expected a whole number from {smallest} to 999999999, got {text[:20]!r}")
        limits[name] = int(text)
    return HubLimits(**limits)


def initial_state(settings: PipelineSettings, *, echo: Callable[[str], None],
                  limits: HubLimits = HubLimits()) -> HubState:
    state = HubState(max_partitions=limits.max_partitions, max_runs=limits.max_runs,
                     snapshot_partitions=limits.snapshot_partitions)
    home = os.environ.get("DAGSTER_HOME")
    if not home or not os.path.isdir(home):
        echo("DAGSTER_HOME is not an instance directory: starting with an empty state")
        return state
    import dagster as dg

    from asset_pipeline.cli.hub_rebuild import rebuild_from_instance

    catalog = settings.load_catalog()
    try:
        with dg.DagsterInstance.get() as instance:
            rebuild_from_instance(state, instance, catalog.ids)
    except Exception as exc:  # noqa: BLE001 - the hub still serves live events without the history
        echo(f"could not read the Dagster instance ({exc.__class__.__name__}): starting with an empty state")
        return state
    echo(f"rebuilt state: {len(state.partitions)} partition(s), {len(state.runs)} run(s) from the Dagster instance")
    return state


def spend_source(settings: PipelineSettings) -> Callable[[], dict[str, Any] | None]:
    """Spend against the caps the latest run recorded in the ledger; this process's environment
    only until a run has recorded any (`caps_source` says which)."""
    from asset_pipeline.cli.hub_rebuild import ledger_spend
    from asset_pipeline.ledger.database import ledger_engine
    from asset_pipeline.ledger.recorded_caps import current_caps

    environment = settings.budget.caps

    engines: list[Any] = []  # opened on the first refresh (it creates the tables), then reused

    def read() -> dict[str, Any]:
        if not engines:
            engines.append(ledger_engine(settings.ledger_url))
        source = current_caps(engines[0], fallback=environment)
        return {**ledger_spend(settings.ledger_url, source.caps), "caps_source": source.describe()}

    return read
