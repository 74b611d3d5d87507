"""Benchmark: the placeholder backfill with the image store on S3-compatible object storage
against the local folder (issue 16).

One range run over the catalog (default all 490 partitions, concurrency 8, placeholder backend,
fresh SQLite instance) writing to a local folder, then to `s3://bench/estate` on moto's server
(in a subprocess on loopback, reached through AWS_ENDPOINT_URL like any S3-compatible service),
then a re-run of each that is all cache hits. Printed per store: wall time, images/s, and CPU per
image of this process (the run), plus the S3 server's own CPU apart.

    .venv/bin/python bench/object_store_backfill.py [--partitions 490] [--concurrency 8]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import dagster as dg
import yaml

from asset_pipeline.catalog.loader import default_catalog_path
from asset_pipeline.definitions import build_defs
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.serving import free_port


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def range_run(store: str, ledger: Path, catalog: Path, home: Path, keys: list[str], concurrency: int) -> tuple[float, float, int]:
    defs = build_defs(PipelineSettings(data_dir=store, database_url=f"sqlite:///{ledger}", catalog=catalog,
                                       max_concurrency=concurrency, hub_enabled=False))
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = dg.materialize(list(defs.assets or []), selection=["images"], instance=instance,
                                resources=defs.resources, tags=tags, raise_on_error=True)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    count = sum(1 for e in result.get_asset_materialization_events() if e.materialization.asset_key.path == ["images"])
    return wall, cpu, count


def fresh_home(root: Path, name: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.sqlite.yaml").read_text())
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench-secret", AWS_DEFAULT_REGION="us-east-1")
    try:
        for _ in range(100):
            try:
                boto3.client("s3").create_bucket(Bucket="bench")
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            document = yaml.safe_load(default_catalog_path().read_text())
            document["images"] = document["images"][: args.partitions or None]
            catalog = root / "catalog.yaml"
            catalog.write_text(yaml.safe_dump(document))
            keys = [entry["id"] for entry in document["images"]]
            rows = {}
            for label, store in (("local folder", str(root / "data")), ("S3 (moto)", "s3://bench/estate")):
                server_cpu = process_cpu(server.pid)
                first = range_run(store, root / f"{label[:2]}.db", catalog, fresh_home(root, f"{label[:2]}-1"), keys,
                                  args.concurrency)
                cached = range_run(store, root / f"{label[:2]}.db", catalog, fresh_home(root, f"{label[:2]}-2"), keys,
                                   args.concurrency)
                rows[label] = (first, cached, process_cpu(server.pid) - server_cpu)
    finally:
        server.terminate()
        server.wait(10)
    n = len(keys)
    print(f"placeholder backfill of {n} partitions, one range run, concurrency {args.concurrency} "
          f"(2 shared CPU cores: other work on the machine adds noise)")
    for label, ((wall, cpu, count), (c_wall, c_cpu, c_count), s3_cpu) in rows.items():
        assert count == c_count == n, (label, count, c_count)
        extra = f"; S3 server CPU {s3_cpu / (2 * n) * 1000:.0f} ms/request-image" if label.startswith("S3") else ""
        print(f"  {label:<13} generate: wall {wall:6.1f} s ({n / wall:5.1f} images/s), CPU {cpu / n * 1000:5.1f} ms/image; "
              f"cache hits: wall {c_wall:6.1f} s, CPU {c_cpu / n * 1000:5.1f} ms/image{extra}")


if __name__ == "__main__":
    main()
