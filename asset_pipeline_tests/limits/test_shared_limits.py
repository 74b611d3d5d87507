"""The shared create rate and in-flight limit hold across processes: several workers, each with its
own engine (or Redis connection), on SQLite, real PostgreSQL and real Redis."""

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.limits.aimd import AimdConfig, initial_state
from asset_pipeline.limits.redis_store import RedisLimitStore
from asset_pipeline.limits.shared import AdaptiveConcurrency, SharedRateLimit
from asset_pipeline.limits.sql_store import SqlLimitStore
from asset_pipeline.limits.store import LimitStore
from asset_pipeline_testing.postgres import fresh_database

REDIS_URL = "redis://127.0.0.1:6379/6"
RATE = 20.0


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def stores(request, tmp_path) -> Iterator[Callable[[], LimitStore]]:
    """A factory of independent stores over one shared state (one engine / connection each)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        yield lambda: SqlLimitStore(ledger_engine(url))
    elif request.param == "postgresql":
        with fresh_database() as url:
            yield lambda: SqlLimitStore(ledger_engine(url))
    else:
        prefix = f"test:limits:{uuid.uuid4().hex}:"
        yield lambda: RedisLimitStore(REDIS_URL, prefix=prefix)


def test_one_rate_across_workers(stores):
    """Four workers with their own stores take 40 creates: together they never beat RATE/s."""
    workers = [SharedRateLimit(stores(), key="replicate", rate=RATE) for _ in range(4)]
    times: list[float] = []
    lock = threading.Lock()

    def work(limit: SharedRateLimit) -> None:
        for _ in range(10):
            assert limit.acquire(threading.Event())
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    assert len(times) == 40
    span = times[-1] - times[0]
    assert span >= 39 / RATE * 0.9  # 40 requests at 20/s take at least ~1.95 s, whoever sends them
    for first, later in zip(times, times[int(RATE):]):  # no 1 s window holds more than the rate (+1 of jitter)
        assert later - first >= 1.0 - 0.1


def test_a_cancelled_wait_returns_false_at_once(stores):
    limit = SharedRateLimit(stores(), key="replicate", rate=0.5)
    assert limit.acquire(threading.Event())
    cancelled = threading.Event()
    threading.Timer(0.2, cancelled.set).start()
    started = time.monotonic()
    assert limit.acquire(cancelled) is False
    assert time.monotonic() - started < 10  # the 2 s slot is not waited out


def test_in_flight_limit_across_workers_and_it_adapts(stores):
    """Three workers, 5 slots shared: never more than 5 held at once; a 429 halves it for everyone."""
    config = AimdConfig(max_limit=5)
    limiters = [AdaptiveConcurrency(stores(), key="replicate", config=config, lease_s=60) for _ in range(3)]
    held, peak = [0], [0]
    lock = threading.Lock()

    def work(limiter: AdaptiveConcurrency) -> None:
        for _ in range(4):
            with limiter.slot(threading.Event()) as slot:
                assert slot is not None
                with lock:
                    held[0] += 1
                    peak[0] = max(peak[0], held[0])
                time.sleep(0.05)
                with lock:
                    held[0] -= 1

    threads = [threading.Thread(target=work, args=(limiter,)) for limiter in limiters for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 < peak[0] <= 5
    for _ in range(3):  # sustained push-back (a lone fault is ignored)
        limiters[0].observe("throttled", latency_s=None)
    assert limiters[1].limit == 2  # 5 * 0.5, seen by another worker
    with limiters[2].slot(threading.Event()) as slot:  # a healthy answer in another worker grows it again
        slot.report("ok")
    assert limiters[0].store.read_limit("replicate").limit == pytest.approx(2.5 + 1 / 2.5)


def test_a_crashed_holder_frees_its_slot_when_the_lease_expires(stores):
    config = AimdConfig(max_limit=1)
    crashed = AdaptiveConcurrency(stores(), key="replicate", config=config, lease_s=0.5)
    taken, _ = crashed.store.try_slot("replicate", holder="dead", lease_s=0.5, initial=initial_state(config))
    assert taken
    other = AdaptiveConcurrency(stores(), key="replicate", config=config, lease_s=60)
    started = time.monotonic()
    with other.slot(threading.Event()) as slot:
        assert slot is not None
    assert time.monotonic() - started > 0.3


def test_a_live_holder_keeps_its_slot_past_the_lease(stores):
    """Leases are renewed while the request is in flight: a long prediction keeps its slot."""
    config = AimdConfig(max_limit=1)
    holder = AdaptiveConcurrency(stores(), key="replicate", config=config, lease_s=0.6)
    other = AdaptiveConcurrency(stores(), key="replicate", config=config, lease_s=0.6)
    with holder.slot(threading.Event()) as slot:
        assert slot is not None
        cancelled = threading.Event()
        threading.Timer(1.5, cancelled.set).start()  # 2.5 leases long
        with other.slot(cancelled) as never:
            assert never is None
    with other.slot(threading.Event()) as later:
        assert later is not None
