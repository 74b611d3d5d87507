"""Benchmark: every catalog partition through one range run with the placeholder backend.

Prints the time to load the definitions (fresh interpreter), the pure rendering time of every
image, and three range runs of the whole catalog on a fresh SQLite instance: concurrency 1 (from
which orchestration overhead per image = (run wall - rendering) / images), the configured
concurrency, and a re-run that is all cache hits. A last run logs the same events per partition
with no image work, to split the overhead into Dagster's event log and our own code.

    make bench            # or: .venv/bin/python bench/placeholder_backfill.py [--concurrency 8]
"""


import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from asset_pipeline.catalog import load_catalog
from asset_pipeline.definitions import build_defs
from asset_pipeline.generation.placeholder import PLACEHOLDER_MODEL, PlaceholderBackend
from asset_pipeline.generation.request import build_request
from asset_pipeline.settings import PipelineSettings

TARGET_OVERHEAD_MS = 20.0
TARGET_LOAD_S = 1.5


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def definitions_load_seconds(repeats: int = 3) -> float:
    """Best of `repeats` fresh interpreters importing `asset_pipeline.definitions` (dagster included)."""
    code = "import time; t = time.perf_counter(); import asset_pipeline.definitions; print(time.perf_counter() - t)"
    timings = [float(subprocess.check_output([sys.executable, "-c", code], text=True).strip()) for _ in range(repeats)]
    return min(timings)


def rendering_seconds() -> float:
    backend = PlaceholderBackend()
    started = time.perf_counter()
    for spec in load_catalog().images:
        backend.render(build_request(spec, backend="placeholder", model=PLACEHOLDER_MODEL))
    return time.perf_counter() - started


def range_run(data_dir: Path, home: Path, concurrency: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and materializations of one run over every partition."""
    defs = build_defs(PipelineSettings(data_dir=data_dir, max_concurrency=concurrency))
    keys = load_catalog().ids
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = dg.materialize(
            list(defs.assets or []), selection=["images"], instance=instance,
            resources=defs.resources, tags=tags, raise_on_error=True,
        )
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    count = sum(1 for e in result.get_asset_materialization_events() if e.materialization.asset_key.path == ["images"])
    return wall, cpu, count


def dagster_floor(home: Path) -> float:
    """Wall seconds for Dagster alone to log the same events per partition (1 materialization with
    as many metadata entries, 3 check evaluations) with no image work: the event-log floor."""
    keys = load_catalog().ids
    partitions_def = dg.StaticPartitionsDefinition(keys)
    names = ("check_a", "check_b", "check_c")

    @dg.asset(
        key="floor", partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run(),
        output_required=False,
        check_specs=[dg.AssetCheckSpec(n, asset="floor", partitions_def=partitions_def) for n in names],
    )
    def floor(context: dg.AssetExecutionContext):
        for key in context.partition_keys:
            yield dg.AssetMaterialization(asset_key="floor", partition=key, metadata={f"m{i}": i for i in range(17)})
            for name in names:
                yield dg.AssetCheckEvaluation(asset_key=dg.AssetKey("floor"), check_name=name, passed=True, partition=key)
        for output_name in context.assets_def.check_specs_by_output_name:
            yield dg.Output(None, output_name=output_name)

    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        started = time.perf_counter()
        dg.materialize([floor], instance=instance, tags=tags)
        return time.perf_counter() - started


def fresh_home(root: Path, name: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.sqlite.yaml").read_text())
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    images = len(load_catalog().images)

    load_s = definitions_load_seconds()
    render_s = rendering_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serial_wall, serial_cpu, serial_count = range_run(root / "data-serial", fresh_home(root, "serial"), 1)
        wall, cpu, count = range_run(root / "data", fresh_home(root, "concurrent"), args.concurrency)
        cached_wall, cached_cpu, cached_count = range_run(root / "data", fresh_home(root, "cached"), args.concurrency)
        floor_s = dagster_floor(fresh_home(root, "floor"))
    assert serial_count == count == cached_count == images, (serial_count, count, cached_count, images)

    overhead_ms = (serial_wall - render_s) / images * 1000
    print(f"images in catalog                     {images}")
    print(f"definitions load (fresh interpreter)  {load_s:.3f} s   (target <= {TARGET_LOAD_S} s)")
    print(f"rendering only, serial               {render_s:.2f} s   ({render_s / images * 1000:.1f} ms/image)")
    print(f"range run, concurrency 1             wall {serial_wall:.2f} s, CPU {serial_cpu:.2f} s")
    print(f"range run, concurrency {args.concurrency:<2}            wall {wall:.2f} s, CPU {cpu:.2f} s "
          f"({images / wall:.1f} images/s)")
    print(f"re-run, all cache hits               wall {cached_wall:.2f} s, CPU {cached_cpu:.2f} s "
          f"({cached_wall / images * 1000:.1f} ms/image)")
    print(f"orchestration overhead per image      {overhead_ms:.1f} ms   (target <= {TARGET_OVERHEAD_MS} ms; "
          f"(serial wall - rendering) / images)")
    print(f"  of which Dagster's event log        {floor_s / images * 1000:.1f} ms   (same events, no image work)")
    print(f"  of which asset_pipeline             {overhead_ms - floor_s / images * 1000:.1f} ms   "
          f"(store, checks, preview, lineage)")


if __name__ == "__main__":
    main()
