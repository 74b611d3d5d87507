"""Benchmark: 490 briefs through the fake LLM (300 ms per answer) and the placeholder backend in one
range run over `prompts` and `images`, against the images-only range run of the same catalog.

Prints wall time and orchestration CPU per partition of both (the fake LLM runs in its own process,
so its CPU is not counted), how many Dagster runs each took, what the prompts cost, and the cost of
a second run of both assets (every prompt and image a cache hit: $0, no LLM call).

    .venv/bin/python bench/prompts_backfill.py [--size 490] [--delay 0.3] [--prompt-concurrency 8]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg

from asset_pipeline.catalog import load_catalog
from asset_pipeline.definitions import build_defs
from asset_pipeline.settings import PipelineSettings
from asset_pipeline_testing.briefs import LLM_KEY, MODEL, PRICES_JSON, STYLE, write_brief_catalog
from asset_pipeline_testing.helpers import write_catalog
from asset_pipeline_testing.serving import free_port


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def catalogs(root: Path, size: int) -> tuple[Path, Path]:
    """The bundled catalog's first `size` entries as written prompts, and the same entries as briefs."""
    specs = load_catalog().images[:size]
    written, briefs = [], []
    for spec in specs:
        base = {"id": spec.id, "category": spec.category, "width": spec.width, "height": spec.height, "seed": spec.seed}
        written.append({**base, "prompt": spec.prompt})
        briefs.append({**base, "brief": (spec.prompt or "").split(",")[0][:200]})
    return write_catalog(root / "written.yaml", written), write_brief_catalog(root / "briefs.yaml", briefs, STYLE)


def fresh_home(root: Path, name: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.sqlite.yaml").read_text())
    return home


def range_run(settings: PipelineSettings, home: Path, selection: list[str]) -> tuple[float, float, dict[str, int], int]:
    """Wall s, CPU s, materializations per asset, and the number of runs on the instance afterwards."""
    defs = build_defs(settings)
    keys = load_catalog(settings.catalog).ids
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        before = len(instance.get_run_records())
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = dg.materialize(list(defs.assets or []), selection=selection, instance=instance,
                                resources=defs.resources, tags=tags, raise_on_error=True)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        runs = len(instance.get_run_records()) - before
    counts: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        name = event.materialization.asset_key.to_user_string()
        counts[name] = counts.get(name, 0) + 1
    return wall, cpu, counts, runs


def llm_spend(settings: PipelineSettings) -> float:
    generator = build_defs(settings).resources["image_generator"]
    return sum(e["amount_usd"] for e in generator.ledger.entries() if e["kind"] == "charge")


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
        except urllib.error.HTTPError:
            return  # the server answers (405 for GET): it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the fake LLM did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=490, help="catalog entries (the bundled catalog has 490)")
    parser.add_argument("--delay", type=float, default=0.3, help="seconds per LLM answer")
    parser.add_argument("--prompt-concurrency", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8, help="images at once")
    args = parser.parse_args()

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "asset_pipeline_testing.fake_openai", str(port), str(args.delay)])
    os.environ["ASSET_PIPELINE_LLM_API_KEY"] = LLM_KEY
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/chat/completions")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            written, briefs = catalogs(root, args.size)
            size = len(load_catalog(written).images)
            only = PipelineSettings(catalog=written, data_dir=root / "data-images", max_concurrency=args.concurrency,
                                    hub_enabled=False)
            a_wall, a_cpu, a_counts, a_runs = range_run(only, fresh_home(root, "images"), ["images"])
            both = PipelineSettings(
                catalog=briefs, data_dir=root / "data-both", max_concurrency=args.concurrency, hub_enabled=False,
                prompts="llm", llm_base_url=f"http://127.0.0.1:{port}/v1", llm_model=MODEL, llm_prices=PRICES_JSON,
                prompts_max_concurrency=args.prompt_concurrency,
            )
            home = fresh_home(root, "both")
            b_wall, b_cpu, b_counts, b_runs = range_run(both, home, ["prompts", "images"])
            spent = llm_spend(both)
            c_wall, c_cpu, c_counts, c_runs = range_run(both, home, ["prompts", "images"])
            second = llm_spend(both) - spent
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"partitions                             {size} (LLM answer {args.delay * 1000:.0f} ms, "
          f"{args.prompt_concurrency} prompts / {args.concurrency} images at once)")
    print(f"images only, range run                 {a_runs} run(s), wall {a_wall:.2f} s, CPU {a_cpu:.2f} s: "
          f"{a_wall / size * 1000:.1f} ms wall, {a_cpu / size * 1000:.1f} ms CPU per partition  {a_counts}")
    print(f"prompts + images, range run            {b_runs} run(s), wall {b_wall:.2f} s, CPU {b_cpu:.2f} s: "
          f"{b_wall / size * 1000:.1f} ms wall, {b_cpu / size * 1000:.1f} ms CPU per partition  {b_counts}")
    print(f"  LLM waiting alone (answers / slots)  {size * args.delay / args.prompt_concurrency:.2f} s; "
          f"prompts cost ${spent:.6f} (${spent / size:.7f} per prompt)")
    print(f"second run of both (all cache hits)    {c_runs} run(s), wall {c_wall:.2f} s, CPU {c_cpu:.2f} s, "
          f"cost ${second:.6f}  {c_counts}")


if __name__ == "__main__":
    main()
