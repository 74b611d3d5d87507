"""Benchmark: the ComfyUI backend against fake ComfyUI servers (one job at a time per server).

N partitions (default 60) in one range run, over 1 and over 3 fake servers, each job taking
`--job-seconds` (2 s) on its server: wall time of the run against the limit
(N x job seconds / servers), the GPU seconds the servers billed, and how many progress messages a
real hub (`asset-pipeline hub` in its own process) delivered to a monitor per job.

    .venv/bin/python bench/comfyui.py [--partitions 60] [--job-seconds 2] [--steps 20] [--servers 1,3]
"""

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import yaml
from websockets.sync.client import connect

from asset_pipeline.definitions import build_defs
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.fake_comfyui.running import running_fake_comfyuis
from asset_pipeline_testing.fake_comfyui.server import FakeComfyState
from asset_pipeline_testing.hub_process import hub_process


class Monitor:
    """Counts the hub's progress messages per partition, as a dashboard would receive them (and, like
    the dashboard, answers the hub's pings)."""

    def __init__(self, ws_url: str):
        self.counts: Counter[str] = Counter()
        self.steps: Counter[str] = Counter()
        self._stop = threading.Event()
        self.ended: str | None = None  # why the hub closed the monitor early, if it did
        self._connection = connect(ws_url + "/ws/monitor", open_timeout=10, max_size=None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import json

        while not self._stop.is_set():
            try:
                message = json.loads(self._connection.recv(timeout=0.5))
            except TimeoutError:
                continue
            except Exception as exc:  # noqa: BLE001 - closed at the end
                if not self._stop.is_set():
                    self.ended = repr(exc)[:200]
                return
            if message.get("type") == "ping":  # the hub closes subscribers that do not answer its pings
                self._connection.send(json.dumps({"type": "pong"}))
            elif message.get("type") == "progress" and message.get("partition_key"):
                self.counts[message["partition_key"]] += 1
                if message.get("current_step"):
                    self.steps[message["partition_key"]] += 1

    def close(self) -> None:
        time.sleep(1.0)  # let the last messages arrive
        self._stop.set()
        self._connection.close()
        self._thread.join(timeout=5)


def run(root: Path, servers: int, partitions: int, job_seconds: float, steps: int, hub_url: str, ws_url: str,
        args_verbose: bool = False) -> None:
    catalog = root / f"catalog-{servers}.yaml"
    images = [{"id": f"img-{i:03d}", "category": "hero", "prompt": f"a lighthouse {i} on {servers}", "width": 96,
               "height": 64, "seed": i, "steps": steps} for i in range(partitions)]
    catalog.write_text(yaml.safe_dump({"images": images}))
    data_dir = root / f"data-{servers}"
    data_dir.mkdir()
    with running_fake_comfyuis([FakeComfyState(job_seconds=job_seconds) for _ in range(servers)]) as fakes:
        settings = PipelineSettings(
            catalog=catalog, data_dir=data_dir, backend="comfyui", comfyui_url=",".join(f.base_url for f in fakes),
            gpu_hour_usd=3.6, max_concurrency=min(256, 2 * servers + 2), comfyui_queue_depth=2, poll_interval_s=0.1,
            hub_url=hub_url, budget_total_usd=1000, budget_daily_usd=1000, budget_per_run_usd=1000)
        defs = build_defs(settings)
        monitor = Monitor(ws_url)
        with dg.instance_for_test() as instance:
            started = time.perf_counter()
            result = dg.materialize(list(defs.assets or []), selection=["images"], instance=instance,
                                    resources=dict(defs.resources or {}), raise_on_error=False,
                                    tags={"dagster/asset_partition_range_start": images[0]["id"],
                                          "dagster/asset_partition_range_end": images[-1]["id"]})
            wall = time.perf_counter() - started
        monitor.close()
        made = sum(len(f.submitted) for f in fakes)
        limit = partitions * job_seconds / servers
        per_job = [monitor.counts[image["id"]] for image in images]
        step_msgs = [monitor.steps[image["id"]] for image in images]
        busiest = max(f.max_in_server for f in fakes)
        span = max(f.last_end or 0 for f in fakes) - min(f.first_start or 0 for f in fakes)
        print(f"comfyui {servers} server(s): {partitions} partitions, {job_seconds:g} s jobs, success={result.success}, "
              f"prompts={made}: wall {wall:.1f} s vs limit {limit:.1f} s ({wall / limit:.2f}x); "
              f"first job start to last job end {span:.1f} s ({span / limit:.2f}x); "
              f"GPU billed {sum(sum(f.gpu_seconds.values()) for f in fakes):.1f} s; most prompts at one server {busiest}")
        print(f"comfyui {servers} server(s): hub progress messages per job: min {min(per_job)} / "
              f"mean {sum(per_job) / len(per_job):.1f} / max {max(per_job)} (step messages mean "
              f"{sum(step_msgs) / len(step_msgs):.1f} of {steps} sampler steps)")
    if monitor.ended:
        print(f"comfyui {servers} server(s): the hub closed the monitor early: {monitor.ended}")
    if args_verbose:
        print("per job:", per_job, "fake progress sent:", sum(f.progress_sent for f in fakes))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=60)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--servers", default="1,3")
    parser.add_argument("--verbose", action="store_true", help="also print each job's message count")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, hub_process() as hub:
        for servers in [int(part) for part in args.servers.split(",")]:
            run(Path(scratch), servers, args.partitions, args.job_seconds, args.steps, hub.url, hub.ws_url, args.verbose)


if __name__ == "__main__":
    main()
