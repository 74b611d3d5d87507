"""Benchmark: the hub scaled out over Redis against one hub and against a bare `websockets` floor.

Three setups in the same run, each with N subscribers (spread over --client-processes processes,
asyncio, `websockets`; the floor runs first and last, to show drift in the machine's load)
and R events/s for D seconds, every event carrying its publish time for publish-to-receive latency:

1. floor: a bare `websockets` server that numbers each published message and hands it to
   `websockets.broadcast` (encoded once, written to every client): the least a Python server can
   spend per delivery;
2. `asset-pipeline hub`, one process, all N subscribers on /ws/monitor;
3. two `asset-pipeline hub` processes sharing Redis (ASSET_PIPELINE_REDIS_URL, a prefix of this
   run's own in DB 5), N/2 subscribers on each, events POSTed to each in turn (a load balancer).

Printed per setup: delivered/expected, p50/p99 latency, server CPU seconds (the hub processes'
together; Redis's own CPU is not counted) and CPU per delivery, against the floor. Target: hub CPU
per delivery <= 1.3x the floor, p99 no worse than the floor's.

    .venv/bin/python bench/hub_scaleout.py [--subscribers 1000] [--rate 50] [--seconds 30] [--redis-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from asset_pipeline_testing.serving import free_port

MARK = '"message":"t='


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def subscribers_process(urls: list[str], count: int, expected: int, ready, done_queue) -> None:
    asyncio.run(_subscribers(urls, count, expected, ready, done_queue))


async def _subscribers(urls: list[str], count: int, expected: int, ready, done_queue) -> None:
    """`count` clients spread over `urls`; each stops after `expected` marked messages."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    received = [0] * count

    async def one(index: int, connected: asyncio.Event) -> None:
        async with connect(urls[index % len(urls)], max_queue=None, open_timeout=120, ping_interval=None,
                           compression=None) as websocket:
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


def floor_server(port: int, ready) -> None:
    asyncio.run(_floor(port, ready))


async def _floor(port: int, ready) -> None:
    """Subscribers on any path; a client on /publish sends bodies, each numbered, stamped, encoded
    once and broadcast, as the hub's envelope does, then acknowledged (as the hub answers a POST, so
    both publishers wait alike and a slow server shows as a late publish, not as latency only)."""
    from websockets.asyncio.server import broadcast, serve

    from asset_pipeline.progress.messages import encode, envelope

    clients: set = set()
    seq = 0

    async def handler(websocket) -> None:
        nonlocal seq
        if websocket.request.path == "/publish":
            async for text in websocket:
                seq += 1
                broadcast(clients, encode(envelope(seq, json.loads(text))))
                await websocket.send("ok")  # like the hub's POST response: the publisher waits for it
            return
        clients.add(websocket)
        try:
            await websocket.wait_closed()
        finally:
            clients.discard(websocket)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=64 * 1024):
        ready.set()
        await asyncio.Future()


def event(index: int) -> dict:
    return {"type": "progress", "run_id": "bench", "partition_key": f"img-{index % 490:03d}",
            "status": "generating", "current_step": index % 30 + 1, "total_steps": 30,
            "percentage": round(100 * (index % 30 + 1) / 30, 2), "message": f"t={time.time():.6f}"}


@dataclass
class Result:
    name: str
    subscribers: int
    received: int
    expected: int
    p50_ms: float
    p99_ms: float
    cpu_s: float
    publish_s: float
    clients_cpu_s: float

    @property
    def cpu_per_delivery_us(self) -> float:
        return 1e6 * self.cpu_s / max(1, self.received)


def measure(name: str, urls: list[str], pids: list[int], publish, subscribers: int, rate: float,
            seconds: float, client_processes: int) -> Result:
    expected = int(rate * seconds)
    done = multiprocessing.Queue()
    clients = []
    for part in range(client_processes):
        count = subscribers // client_processes + (part < subscribers % client_processes)
        ready = multiprocessing.Event()
        process = multiprocessing.Process(target=subscribers_process,
                                          args=(urls[part % len(urls):] + urls[:part % len(urls)], count, expected,
                                                ready, done))
        process.start()
        if not ready.wait(300):
            raise RuntimeError(f"{name}: subscribers did not connect")
        clients.append(process)
    cpu_before = sum(proc_cpu_seconds(pid) for pid in pids)
    clients_before = sum(proc_cpu_seconds(process.pid) for process in clients)
    started = time.monotonic()
    for index in range(expected):
        time.sleep(max(0.0, started + index / rate - time.monotonic()))
        publish(index, event(index))
    publish_s = time.monotonic() - started
    received, latencies = 0, []
    for _ in clients:
        part_received, part_latencies = done.get(timeout=expected / 10 + 180)
        received += part_received
        latencies += part_latencies
    cpu = sum(proc_cpu_seconds(pid) for pid in pids) - cpu_before
    clients_cpu = sum(proc_cpu_seconds(process.pid) for process in clients) - clients_before
    for process in clients:
        process.join(30)
    latencies.sort()
    pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    return Result(name, subscribers, received, expected * subscribers, pct(0.5), pct(0.99), cpu, publish_s,
                  clients_cpu)


def start_hub(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ASSET_PIPELINE_", "DAGSTER_"))}
    process = subprocess.Popen([str(Path(sys.executable).parent / "asset-pipeline"), "hub", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**environ, "DAGSTER_HOME": "/nonexistent", **env})
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(base + "/healthz")
            return process, base
        except httpx.HTTPError:
            if process.poll() is not None:
                raise RuntimeError("hub did not start") from None
            time.sleep(0.05)
    raise RuntimeError("hub did not start")


def run_floor(args) -> Result:
    from websockets.sync.client import connect

    port, ready = free_port(), multiprocessing.Event()
    server = multiprocessing.Process(target=floor_server, args=(port, ready), daemon=True)
    server.start()
    ready.wait(30)
    try:
        with connect(f"ws://127.0.0.1:{port}/publish", compression=None, ping_interval=None) as publisher:

            def publish(index: int, body: dict) -> None:
                publisher.send(json.dumps(body))
                publisher.recv(timeout=120)

            return measure("bare websockets floor", [f"ws://127.0.0.1:{port}/monitor"], [server.pid], publish,
                           args.subscribers, args.rate,
                           args.seconds, args.client_processes)
    finally:
        server.terminate()


def run_hubs(args, name: str, env: dict[str, str], instances: int) -> Result:
    hubs = [start_hub(env) for _ in range(instances)]
    try:
        with httpx.Client() as http:
            return measure(name, [base.replace("http", "ws") + "/ws/monitor" for _, base in hubs],
                           [process.pid for process, _ in hubs],
                           lambda index, body: http.post(hubs[index % len(hubs)][1] + "/api/events", json=body),
                           args.subscribers, args.rate, args.seconds, args.client_processes)
    finally:
        for process, _ in hubs:
            process.terminate()
            process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--client-processes", type=int, default=2, help="processes the subscribers are spread over")
    parser.add_argument("--setups", default="floor,one,two,floor",
                        help="which setups, in order (the floor twice by default: before and after, to show drift)")
    args = parser.parse_args()
    prefix = f"bench-hub-scaleout:{secrets.token_hex(4)}"
    load_before = os.getloadavg()
    setups = {
        "floor": lambda: run_floor(args),
        "one": lambda: run_hubs(args, "hub, 1 instance", {}, 1),
        "two": lambda: run_hubs(args, "hub, 2 instances + Redis", {"ASSET_PIPELINE_REDIS_URL": args.redis_url,
                                                                   "ASSET_PIPELINE_HUB_REDIS_PREFIX": prefix}, 2),
    }
    results = [setups[name.strip()]() for name in args.setups.split(",")]
    client = redis.Redis.from_url(args.redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    floors = [result for result in results if result.name.startswith("bare")] or results[:1]
    floor = min(floors, key=lambda result: result.cpu_per_delivery_us)  # the cheaper floor: the stricter target
    print(f"hub scale-out: {args.subscribers} subscribers in {args.client_processes} client processes, {args.rate:g} events/s for {args.seconds:g} s; "
          f"{os.cpu_count()} cores, load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"  {'setup':<26} {'delivered/expected':>26} {'p50 ms':>8} {'p99 ms':>8} {'CPU s':>7} "
          f"{'CPU/delivery':>13} {'vs floor':>9} {'clients CPU s':>14} {'published in':>13}")
    for result in results:
        share = f"{100 * result.received / result.expected:.2f}%"
        print(f"  {result.name:<26} {f'{result.received}/{result.expected} ({share})':>26} {result.p50_ms:>8.1f} "
              f"{result.p99_ms:>8.1f} {result.cpu_s:>7.1f} {result.cpu_per_delivery_us:>10.1f} us "
              f"{result.cpu_per_delivery_us / floor.cpu_per_delivery_us:>8.2f}x {result.clients_cpu_s:>14.1f} "
              f"{result.publish_s:>11.1f} s")
    print("  (target: hub CPU per delivery <= 1.3x the floor, p99 no worse than the floor's; "
          "Redis's own CPU is not counted)")


if __name__ == "__main__":
    main()
