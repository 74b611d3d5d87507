"""The provider limits around a backend: how answers move the shared limit (an in-memory backend,
no sockets), and two generator resources (two runs) against the fake Replicate server with a
create-rate limit on one PostgreSQL ledger: zero 429s, the rate held, the limit reported."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asset_pipeline.catalog.spec import ImageSpec
from asset_pipeline.errors import ConfigurationError, GenerationError, ProviderError
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.placeholder import PlaceholderBackend
from asset_pipeline.generation.request import GenerationRequest, build_request
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.limits.aimd import AimdConfig
from asset_pipeline.limits.limited_backend import LimitedBackend
from asset_pipeline.limits.redis_store import RedisLimitStore
from asset_pipeline.limits.shared import AdaptiveConcurrency, SharedRateLimit
from asset_pipeline.limits.sql_store import SqlLimitStore
from asset_pipeline.resources.image_generator import ImageGenerator
from asset_pipeline.settings import load_settings
from asset_pipeline_testing.postgres import fresh_database
from asset_pipeline_testing.serving import free_port


class ScriptedBackend(ImageBackend):
    """Answers from a script: 'ok' renders a placeholder, a number raises that HTTP status."""

    name, is_paid = "replicate", True

    def __init__(self, script: list):
        self.script = script

    @property
    def default_model(self) -> str:
        return "test/model"

    def render(self, request: GenerationRequest, session: RenderSession) -> RenderedImage:
        step = self.script.pop(0)
        if step != "ok":
            raise ProviderError(request.partition_key, f"HTTP {step}", status=step)
        return PlaceholderBackend().render(request, session)


def request(key: str = "img-00") -> GenerationRequest:
    spec = ImageSpec(id=key, category="icon", prompt="a test icon", width=64, height=64, seed=1)
    return build_request(spec, backend="replicate", model="test/model")


def test_a_429_halves_the_shared_limit_and_successes_grow_it(tmp_path: Path):
    store = SqlLimitStore(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    seen: list[int] = []
    concurrency = AdaptiveConcurrency(store, key="replicate", config=AimdConfig(max_limit=8), lease_s=60,
                                      on_change=seen.append)
    backend = LimitedBackend(ScriptedBackend([429, 429, 429, "ok", 503]),
                             rate=SharedRateLimit(store, key="replicate", rate=100), concurrency=concurrency)
    for _ in range(2):  # a lone 429 or two may be a random fault: not yet a reason to back off
        with pytest.raises(ProviderError):
            backend.render(request(), RenderSession())
    assert store.read_limit("replicate") is None and seen == [8]
    with pytest.raises(ProviderError):  # the third in a row is sustained push-back
        backend.render(request(), RenderSession())
    assert concurrency.limit == 4 and seen == [8, 4]
    backend.render(request(), RenderSession())
    assert store.read_limit("replicate").limit == pytest.approx(4.25)
    with pytest.raises(ProviderError):  # within the cooldown of the last decrease: no second halving
        backend.render(request(), RenderSession())
    assert concurrency.limit == 4


def test_a_cancelled_run_waiting_for_a_slot_stops_without_rendering(tmp_path: Path):
    store = SqlLimitStore(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    concurrency = AdaptiveConcurrency(store, key="replicate", config=AimdConfig(max_limit=1), lease_s=60)
    scripted = ScriptedBackend(["ok"])
    backend = LimitedBackend(scripted, rate=SharedRateLimit(store, key="replicate", rate=100), concurrency=concurrency)
    with concurrency.slot() as held:
        assert held is not None
        cancelled = threading.Event()
        threading.Timer(0.3, cancelled.set).start()
        with pytest.raises(Exception, match="run terminated while waiting"):
            backend.render(request(), RenderSession(cancelled=cancelled))
    assert scripted.script == ["ok"]


def test_two_runs_share_one_create_rate_on_postgresql(fake_replicate, monkeypatch):
    fake_replicate.create_rate_limit = 5.0
    fake_replicate.latency_s = 0.3
    with fresh_database() as url:
        runs = [ImageGenerator(backend="replicate", database_url=url, requests_per_second=5.0, max_concurrency=8,
                               budget_total_usd=5, budget_daily_usd=5, budget_per_run_usd=5,
                               provider_max_concurrency=6, replicate_api_token="r8_SECRETtokenNEVERtoBEshown0123456789")
                for _ in range(2)]
        specs = [ImageSpec(id=f"img-{i:02d}", category="icon", prompt=f"icon {i}", width=512, height=512, seed=i)
                 for i in range(20)]

        def make(index: int) -> None:
            generator = runs[index % 2]
            pending = generator.metered.generate(generator.request_for(specs[index]), run_id=f"run-{index % 2}")
            generator.metered.settle(pending, sha256="0" * 64)

        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(make, range(20)))
        wall = time.monotonic() - started
        assert fake_replicate.answered_429 == 0 and fake_replicate.created_total == 20
        # One shared rate of 5/s: 20 creates from both runs together take at least 19 intervals.
        assert wall >= 19 / 5 * 0.95
        gaps = [b - a for a, b in zip(sorted(fake_replicate.create_times), sorted(fake_replicate.create_times)[5:])]
        assert min(gaps) >= 0.6  # never a burst: 6 creates span ~1 s (arrival jitter on a loaded machine aside)
        assert runs[0].concurrency_limit == runs[1].concurrency_limit == 6
        for generator in runs:
            generator.active_backend.close()


def test_an_unreachable_redis_fails_the_image_without_sending_and_without_its_password():
    store = RedisLimitStore(f"redis://:hunter2secret@127.0.0.1:{free_port()}/6")
    scripted = ScriptedBackend(["ok"])
    backend = LimitedBackend(scripted, rate=SharedRateLimit(store, key="replicate", rate=100),
                             concurrency=AdaptiveConcurrency(store, key="replicate", config=AimdConfig(max_limit=2),
                                                             lease_s=60))
    with pytest.raises(GenerationError) as caught:
        backend.render(request(), RenderSession())
    assert "shared provider limits are unavailable" in caught.value.reason and "hunter2" not in str(caught.value)
    assert scripted.script == ["ok"]


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("ASSET_PIPELINE_PROVIDER_MAX_CONCURRENCY", "0", "greater than or equal to 1"),
    ("ASSET_PIPELINE_PROVIDER_MAX_CONCURRENCY", "lots", "valid integer"),
    ("ASSET_PIPELINE_PROVIDER_LIMITS", "galaxy", "'deployment' or 'run'"),
    ("ASSET_PIPELINE_REDIS_URL", "http://:pw-secret@host/0", "expected redis://"),
])
def test_malformed_limit_settings_name_the_variable(monkeypatch, variable, value, reason):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(variable) and reason in str(caught.value)
    assert "pw-secret" not in str(caught.value)


def test_random_faults_among_healthy_answers_do_not_lower_the_limit(tmp_path: Path):
    """15% of answers failing at random (issue 12's bad day) is not push-back: the limit stays up."""
    store = SqlLimitStore(ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    concurrency = AdaptiveConcurrency(store, key="replicate", config=AimdConfig(max_limit=16), lease_s=60)
    for index in range(200):
        concurrency.observe("throttled" if index % 7 == 3 else "ok", latency_s=None if index % 7 == 3 else 1.0)
    assert concurrency.limit == 16
