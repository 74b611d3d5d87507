"""Benchmark: what per-step progress costs a diffusers generation.

The same image (tiny offline SDXL pipeline on the CPU, or the full-size SDXL UNet on a GPU with
--full) is rendered through the real backend three ways, interleaved and repeated in one run:

    raw       the pipeline called directly, no step callback at all
    backend   our backend, progress callback off (the step callback still checks cancellation)
    hub       our backend, every step published to a real `asset-pipeline hub` in another process

Printed: median seconds per image of each, and the ratios hub/backend and hub/raw (target <= 1.005),
plus the measured cost of one progress report (clock + message + enqueue) in microseconds.

    .venv/bin/python bench/diffusers_progress.py [--size 128] [--steps 30] [--repeats 8] [--full]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from asset_pipeline.assets.progress_reports import PartitionProgress
from asset_pipeline.generation.backend import RenderSession
from asset_pipeline.generation.diffusers_backend import DiffusersBackend, _seeded
from asset_pipeline.generation.diffusers_options import DiffusersOptions
from asset_pipeline.generation.progress import ProgressClock
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.resources.progress_hub import ProgressHub
from asset_pipeline_testing.serving import free_port
from asset_pipeline_testing.tiny_sdxl import save_tiny_sdxl


def start_hub(port: int) -> subprocess.Popen:
    hub = subprocess.Popen([str(Path(sys.executable).parent / "asset-pipeline"), "hub", "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz")
            return hub
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("hub did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--model-dir", help="an SDXL directory; default: a tiny one built now")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="CPU threads for torch; 1 leaves a core to the publisher and hub, as a GPU would")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(args.model_dir) if args.model_dir else Path(scratch) / "tiny"
        if not args.model_dir:
            save_tiny_sdxl(model_dir)
        backend = DiffusersBackend(DiffusersOptions(model_dir=str(model_dir)))
        pipelines = backend.pipelines()
        request = GenerationRequest("bench-1", "hero", "diffusers", backend.default_model, "a lighthouse at dusk", "",
                                    args.size, args.size, 5, args.steps, 5.0)
        port = free_port()
        hub_process = start_hub(port)
        hub = ProgressHub(url=f"http://127.0.0.1:{port}")
        from dagster import build_init_resource_context

        hub.setup_for_execution(build_init_resource_context())
        reporter = PartitionProgress(hub.publish, "bench-run", "bench-1")

        def raw() -> None:
            pipelines.base(prompt=request.prompt, width=args.size, height=args.size, num_inference_steps=args.steps,
                           guidance_scale=5.0, generator=_seeded(5))

        variants = {
            "raw": raw,
            "backend": lambda: backend.render(request, RenderSession()),
            "hub": lambda: backend.render(request, RenderSession(on_progress=reporter.step)),
        }
        for run in variants.values():  # warm-up
            run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in order:
                started = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - started)

        clock = ProgressClock([("base", args.steps)], started_at=time.perf_counter())
        count, started = 20_000, time.perf_counter()
        for index in range(count):
            reporter.step(clock.step("base", index=index % args.steps, total=args.steps, now=time.perf_counter()))
        per_report_us = (time.perf_counter() - started) / count * 1e6
        dropped = hub.dropped
        hub.teardown_after_execution(build_init_resource_context())
        delivered = httpx.get(f"http://127.0.0.1:{port}/api/status").json()["events_received"]
        hub_process.terminate()

    median = {name: statistics.median(values) for name, values in times.items()}
    paired = statistics.median(h / b for h, b in zip(times["hub"], times["backend"]))
    step_s = median["backend"] / args.steps
    print(f"diffusers progress overhead: {args.size}x{args.size}, {args.steps} steps, {args.repeats} interleaved repeats, "
          f"device {pipelines.placement.device}, torch threads {args.torch_threads}")
    for name, value in median.items():
        print(f"  {name:8s} median {value * 1000:9.1f} ms/image   (min {min(times[name]) * 1000:.1f}, "
              f"max {max(times[name]) * 1000:.1f})")
    print(f"  ratio hub/backend   {median['hub'] / median['backend']:.4f} of medians, {paired:.4f} median of "
          f"paired repeats   (target <= 1.005)")
    print(f"  ratio hub/raw       {median['hub'] / median['raw']:.4f}")
    fastest = {name: min(values) for name, values in times.items()}
    print(f"  ratio of the fastest repeats (least disturbed by the machine): hub/backend "
          f"{fastest['hub'] / fastest['backend']:.4f}, hub/raw {fastest['hub'] / fastest['raw']:.4f}")
    print(f"  one progress report {per_report_us:.1f} us = {per_report_us / 1e6 / step_s * 100:.3f}% of a "
          f"{step_s * 1000:.1f} ms step; hub received {delivered} events (dropped by the publisher: {dropped}, of the 20,000-report flood)")


if __name__ == "__main__":
    main()
