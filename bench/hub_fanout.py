"""Benchmark: the hub fanning progress out to many subscribers on loopback.

`asset-pipeline hub` runs in its own process; N subscribers connect to /ws/monitor from another
process (asyncio, `websockets`); a publisher POSTs R progress events per second for D seconds.
Each event carries its publish time, so every subscriber measures publish-to-receive latency.

Printed: delivered/expected, p50/p99/max latency, hub CPU seconds and peak memory (from /proc).
Target: nothing lost for clients that keep up, p99 <= 100 ms.

Then a hostile publisher: 100,000 made-up partition keys (and run ids), after which the hub's RSS
and the size of the snapshot a new monitor subscriber receives are printed (both bounded by
ASSET_PIPELINE_HUB_MAX_PARTITIONS / _MAX_RUNS / _SNAPSHOT_PARTITIONS, at their defaults here).

    .venv/bin/python bench/hub_fanout.py [--subscribers 1000] [--rate 50] [--seconds 30]
"""

import argparse
import asyncio
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from asset_pipeline_testing.serving import free_port

MARK = '"message":"t='


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def subscribers_process(url: str, count: int, expected: int, ready, done_queue) -> None:
    asyncio.run(_subscribers(url, count, expected, ready, done_queue))


async def _subscribers(url: str, count: int, expected: int, ready, done_queue) -> None:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0] * count

    async def one(index: int, connected: asyncio.Event) -> None:
        async with connect(url, max_queue=None, open_timeout=60, ping_interval=None) as websocket:
            connected.set()
            async for text in websocket:
                at = text.find(MARK)
                if at < 0:
                    if '"type":"ping"' in text:
                        await websocket.send('{"type":"pong"}')
                    continue
                sent = float(text[at + len(MARK): text.index('"', at + len(MARK))])
                latencies.append(time.time() - sent)
                received[index] += 1
                if received[index] == expected:
                    return

    events = [asyncio.Event() for _ in range(count)]
    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(one(index, events[index])))
        if index % 50 == 49:
            await asyncio.gather(*(event.wait() for event in events[index - 49: index + 1]))
    await asyncio.gather(*(event.wait() for event in events))
    ready.set()
    await asyncio.wait(tasks, timeout=expected / 10 + 120)
    done_queue.put((sum(received), latencies[::max(1, len(latencies) // 200_000)]))


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def flood_made_up_keys(base: str, pid: int, keys: int = 100_000) -> tuple[float, float, float, int, int]:
    """RSS before/after `keys` made-up partition keys, the seconds it took, the hub's kept partitions
    and the size in bytes of the snapshot a new monitor subscriber gets."""
    from websockets.sync.client import connect

    before, started = proc_rss_mib(pid), time.monotonic()
    with httpx.Client(base_url=base, timeout=60) as http:
        for batch in range(keys // 1000):
            http.post("/api/events", json=[
                {"type": "progress", "run_id": f"made-up-{batch}-{index}", "partition_key": f"made-up-{batch}-{index}",
                 "status": "generating", "current_step": 3, "total_steps": 30, "percentage": 10.0,
                 "message": "a made-up key"} for index in range(1000)])
        kept = http.get("/api/status").json()["partitions_known"]
    seconds = time.monotonic() - started
    with connect(base.replace("http", "ws") + "/ws/monitor", max_size=None, open_timeout=60) as client:
        client.recv(timeout=60)  # connection
        snapshot_bytes = len(client.recv(timeout=60).encode())
    return before, proc_rss_mib(pid), seconds, kept, snapshot_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    port = free_port()
    hub = subprocess.Popen([str(Path(sys.executable).parent / "asset-pipeline"), "hub", "--port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "DAGSTER_HOME": "/nonexistent"})
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/healthz")
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    expected = int(args.rate * args.seconds)
    ready, done = multiprocessing.Event(), multiprocessing.Queue()
    clients = multiprocessing.Process(target=subscribers_process,
                                      args=(base.replace("http", "ws") + "/ws/monitor", args.subscribers, expected,
                                            ready, done))
    clients.start()
    if not ready.wait(300):
        raise RuntimeError("subscribers did not connect")
    cpu_before, started = proc_cpu_seconds(hub.pid), time.monotonic()
    clients_cpu_before = proc_cpu_seconds(clients.pid)
    with httpx.Client(base_url=base) as http:
        for index in range(expected):
            target = started + index / args.rate
            time.sleep(max(0.0, target - time.monotonic()))
            event = {"type": "progress", "run_id": "bench", "partition_key": f"img-{index % 490:03d}",
                     "status": "generating", "current_step": index % 30 + 1, "total_steps": 30,
                     "percentage": round(100 * (index % 30 + 1) / 30, 2), "message": f"t={time.time():.6f}"}
            http.post("/api/events", json=event)
    publish_s = time.monotonic() - started
    received, latencies = done.get(timeout=expected / 10 + 180)
    clients_cpu = proc_cpu_seconds(clients.pid) - clients_cpu_before
    clients.join(30)
    cpu = proc_cpu_seconds(hub.pid) - cpu_before
    status = httpx.get(base + "/api/status").json()
    peak = proc_peak_rss_mib(hub.pid)
    rss_before, rss_after, flood_s, kept, snapshot_bytes = flood_made_up_keys(base, hub.pid)
    hub.terminate()
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    total = expected * args.subscribers
    print(f"hub fan-out: {args.subscribers} subscribers on /ws/monitor, {args.rate:g} events/s for {args.seconds:g} s "
          f"(published in {publish_s:.1f} s)")
    print(f"  delivered/expected   {received}/{total} ({100 * received / total:.2f}%); hub dropped {status['dropped']}, "
          f"slow clients cut {status['slow_clients_disconnected']}")
    print(f"  latency publish->receive  p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {latencies[-1] * 1000:.1f} ms "
          f"(target p99 <= 100 ms)")
    print(f"  hub CPU {cpu:.1f} s over {publish_s:.1f} s ({100 * cpu / publish_s:.0f}% of one core), peak RSS {peak:.0f} MiB")
    print(f"  subscribers' process CPU {clients_cpu:.1f} s ({100 * clients_cpu / publish_s:.0f}% of one core; "
          f"{os.cpu_count()} cores in all)")
    print(f"  100,000 made-up partition keys in {flood_s:.1f} s: hub RSS {rss_before:.0f} -> {rss_after:.0f} MiB, "
          f"{kept} partitions kept")
    print(f"  snapshot for a new monitor subscriber after them: {snapshot_bytes / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
