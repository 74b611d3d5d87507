"""The metered call: every paid image goes through here, whatever the backend (no Dagster).

For a paid backend each image goes through the same steps:

1. re-attach to a journaled prediction for the same request hash if one may still deliver, or
   adopt one a dead run created without journaling it, else reserve the estimated cost atomically
   against the caps (`BudgetExhaustedError`);
2. render; a new prediction's id is journaled the moment the provider returns it;
3. check the bytes decode as a PNG of the requested size (never charged as a success otherwise);
4. `ImageProducer` (generation/producer.py) stores the image and only then calls `settle`, which
   charges the actual cost.

A failure releases the reservation, or charges what the provider billed; a prediction whose fate
is unknown keeps its reservation open so the next run can re-attach instead of paying again.
Retries follow each failure's class (`generation/failures.py`); the circuit breaker, shared by
every process through the ledger database, makes requests wait out a provider outage.

`ImageGenerator` (resources/) turns run config into one of these; tests build it directly.

Larger than its neighbours because it is the one place the money sequence lives (re-attach, adopt,
reserve, render, charge or release); the pure parts are elsewhere: failure classes and strategies
(`failures.py`, `retries.py`), prices (`pricing.py`), the breaker and ledger (`ledger/`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from asset_pipeline.errors import (
    BudgetExhaustedError,
    CircuitOpenError,
    CreateOutcomeUnknown,
    GenerationError,
    InvalidImageError,
    OutputNotFetched,
    OutputRefused,
    PaidFailure,
    RequestInFlightError,
    RetriesExhausted,
)
from asset_pipeline.generation.backend import ImageBackend, RenderedImage, RenderSession
from asset_pipeline.generation.failures import PROVIDER_FAILURES, Strategy
from asset_pipeline.generation.progress import ProgressCallback
from asset_pipeline.generation.rate_limit import TokenBucket
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.generation.retries import (
    AttemptRecord,
    RetryNotice,
    classify_error,
    next_request,
    summarize_attempts,
    wait_before_retry,
)
from asset_pipeline.imaging.bounded import read_header
from asset_pipeline.imaging.inspect import inspect_image
from asset_pipeline.ledger.attempts import AttemptLog
from asset_pipeline.ledger.budget_ledger import BudgetLedger, Reservation
from asset_pipeline.ledger.circuit import CircuitBreaker
from asset_pipeline.ledger.journal import MAX_FETCH_TRIES, PredictionJournal
from asset_pipeline.ledger.money import BudgetCaps, is_finite_number

# How long another run's open reservation counts as "being generated right now". Once its
# prediction is journaled (within a second of the reservation), a second run adopts that
# prediction instead of waiting; so this only has to cover reserve -> create -> journal, and a
# reservation left behind by a killed run blocks nobody for longer than this.
IN_FLIGHT_WINDOW_S = 60.0
# How far the provider's clock may be behind ours when matching its predictions to a reservation.
PROVIDER_CLOCK_SKEW = timedelta(minutes=5)
CIRCUIT_POLL_S = 0.5  # how often a request waiting on an open circuit looks again


@dataclass(frozen=True)
class PendingImage:
    """A rendered image whose cost is reserved but not yet charged (charged by `settle`).

    `request` is what finally produced it; `requested` what the catalog asked for, which differs
    after a fallback model or a simplified prompt (the store indexes the image under both).
    """

    request: GenerationRequest
    rendered: RenderedImage
    reservation: Reservation | None
    attempts: int = 1
    strategies: tuple[str, ...] = ()
    requested: GenerationRequest | None = None


@dataclass(frozen=True)
class MeteringPolicy:
    """The limits one metered generator works within."""

    caps: BudgetCaps
    max_attempts: int
    max_retry_spend_usd: float
    backoff_base_s: float
    backoff_cap_s: float
    max_wait_s: float
    fallback_models: tuple[str, ...]
    max_outage_s: float
    poll_interval_s: float


class MeteredGenerator:
    """One backend, metered by the ledger: reserve, render, journal, verify; `settle` charges."""

    def __init__(self, *, backend: ImageBackend, ledger: BudgetLedger, circuit: CircuitBreaker,
                 bucket: TokenBucket, policy: MeteringPolicy):
        self.backend, self.ledger, self.circuit, self.bucket, self.policy = backend, ledger, circuit, bucket, policy
        self.journal = PredictionJournal(ledger.engine)
        self.attempt_log = AttemptLog(ledger.engine)

    def generate(
        self, request: GenerationRequest, *, run_id: str = "", cancelled: threading.Event | None = None,
        on_progress: ProgressCallback | None = None, dead_runs: frozenset[str] = frozenset(),
        is_alive: Callable[[str], bool] | None = None, on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> PendingImage:
        """Render `request` within budget, retrying as each failure's class calls for.

        `on_progress` receives the backend's progress reports (every denoising step for diffusers)
        and must not block; `on_retry` hears of every failed attempt (for the run log). `dead_runs`
        are runs known to have ended: their open reservations do not make the request count as in
        flight elsewhere.

        While the provider's circuit is open the request waits, up to `max_outage_s` from the start
        of the outage. Raises `BudgetExhaustedError` at once, `CircuitOpenError` ("provider
        unavailable since ...") when the outage outlasts that, `RetriesExhausted` when no strategy
        is left, each with a reason that is safe to log.
        """
        cancelled = cancelled or threading.Event()
        if not self.backend.is_paid:
            return self._attempt(request, run_id, cancelled, on_progress, dead_runs, is_alive)
        history: list[AttemptRecord] = []
        current, billed_for_failures = request, 0.0
        counted = 0  # attempts counted against `max_attempts`; a failed breaker trial is the breaker's probe
        while True:
            trial = self._may_send(request, cancelled, history)
            if not self.bucket.acquire(cancelled):
                raise GenerationError(request.partition_key, "run terminated before the request was sent")
            number = len(history) + 1
            try:
                pending = self._attempt(current, run_id, cancelled, on_progress, dead_runs, is_alive)
            except GenerationError as exc:
                classified = classify_error(exc, history)
                provider_failure = classified.failure in PROVIDER_FAILURES
                if not cancelled.is_set():  # our own cancellation says nothing about the provider
                    self.circuit.record(ok=not provider_failure, trial=trial)
                if not (trial and provider_failure):
                    counted += 1
                billed_for_failures += getattr(exc, "billed_usd", 0.0)
                follow_up = next_request(current, classified, history, list(self.policy.fallback_models))
                over_spend = billed_for_failures >= self.policy.max_retry_spend_usd > 0
                give_up = follow_up is None or counted >= self.policy.max_attempts or over_spend or cancelled.is_set()
                strategy = Strategy.FAIL if give_up else classified.strategy
                wait = 0.0 if give_up else wait_before_retry(classified, counted, self.policy)
                history.append(AttemptRecord(number, current.model, classified.failure, strategy, exc.reason))
                self.attempt_log.record(
                    run_id=run_id, partition_key=current.partition_key, request_hash=current.request_hash,
                    model=current.model, attempt=number, failure_class=classified.failure,
                    strategy=strategy, detail=exc.reason,
                )
                if isinstance(exc, (BudgetExhaustedError, RequestInFlightError)):
                    raise
                if on_retry is not None and not cancelled.is_set():
                    on_retry(RetryNotice(request.partition_key, number, classified.failure, strategy, exc.reason,
                                         wait_s=None if give_up else wait))
                if give_up:
                    raise RetriesExhausted(request.partition_key, _summary(exc, history, over_spend),
                                           attempts=history, last=exc) from None
                if cancelled.wait(wait):
                    raise GenerationError(request.partition_key, "run terminated while waiting to retry") from None
                assert follow_up is not None  # give_up covers "no strategy left"
                current = follow_up
                continue
            self.circuit.record(ok=True, trial=trial)
            return replace(pending, attempts=number, strategies=tuple(a.strategy for a in history), requested=request)

    def _may_send(self, request: GenerationRequest, cancelled: threading.Event,
                  history: list[AttemptRecord] | None = None) -> bool:
        """True if this request is one of the breaker's trials.

        While the circuit is open the request waits for it (for its cool-down and the trials'
        verdict) instead of failing: a batch run would otherwise lose every partition that meets an
        outage. Only once the outage has lasted `max_outage_s` does it fail, naming when the outage
        began and the provider's last error.
        """
        circuit = self.circuit
        while True:
            try:
                return circuit.before_request(request.partition_key)
            except CircuitOpenError as exc:
                down_for = (datetime.now(UTC) - exc.since).total_seconds()
                # Past the longest outage, still wait for trials already out: their verdict may
                # close the circuit (a new run after a long outage must not fail beside its trials).
                if down_for >= self.policy.max_outage_s and not circuit.trial_in_flight():
                    raise CircuitOpenError(request.partition_key, _unavailable(exc.since, history or [], circuit),
                                           provider=exc.provider, since=exc.since) from None
                pause = min(CIRCUIT_POLL_S, max(0.05, self.policy.max_outage_s - down_for))
            if cancelled.wait(pause):
                raise GenerationError(request.partition_key, "run terminated while waiting for the provider to come back")

    def _attempt(self, request: GenerationRequest, run_id: str, cancelled: threading.Event,
                 on_progress: ProgressCallback | None = None, dead_runs: frozenset[str] = frozenset(),
                 is_alive: Callable[[str], bool] | None = None) -> PendingImage:
        """One try: reserve (or re-attach), render, verify. Closes the reservation on failure."""
        backend = self.backend
        session = RenderSession(cancelled=cancelled, on_progress=on_progress)
        reservation = self._reserve(request, run_id, session, dead_runs, is_alive) if backend.is_paid else None
        created: list[str] = []

        def on_created(prediction_id: str) -> None:
            created.append(prediction_id)
            if reservation is not None:
                self.journal.record(reservation, prediction_id=prediction_id, status="created")

        session.on_created = on_created
        try:
            rendered = backend.render(request, session)
        except OutputRefused as refused:  # refused for good: book the bill, never re-attach to it
            self._close_failed(reservation, PaidFailure(request.partition_key, refused.reason,
                                                        billed_usd=refused.billed_usd, prediction_id=refused.prediction_id))
            raise
        except PaidFailure as failure:
            self._close_failed(reservation, failure)
            raise
        except BaseException as exc:
            if reservation is None:
                raise
            prediction_id = session.resume_prediction_id or (created[0] if created else None)
            if prediction_id is None:
                if isinstance(exc, CreateOutcomeUnknown):
                    raise  # the reservation stays open: the next attempt searches the provider first
                self.ledger.release(reservation, reason=f"released: {_reason(exc)}")
            elif isinstance(exc, OutputNotFetched) and not cancelled.is_set():  # a terminated run is no try
                self._output_not_fetched(request, reservation, prediction_id, exc)
            elif isinstance(exc, GenerationError):
                raise GenerationError(
                    request.partition_key,
                    f"{exc.reason}; prediction {prediction_id} keeps its reservation and the next run re-attaches",
                ) from None
            raise
        if reservation is not None and rendered.prediction_id:
            self.journal.record(reservation, prediction_id=rendered.prediction_id, status="succeeded")
        self._verify(request, rendered, reservation)
        return PendingImage(request, rendered, reservation)

    def settle(self, pending: PendingImage, *, sha256: str | None, problem: str | None = None) -> None:
        """Charge what the image cost: after it is stored (`sha256`), or with `problem` if storing failed."""
        reservation = pending.reservation
        if reservation is None:
            return
        rendered = pending.rendered
        reason = "charged after the image was stored" if problem is None else f"billed, but not stored: {problem}"
        if rendered.billing_note:
            reason += f"; {rendered.billing_note}"
        self.ledger.charge(reservation, amount_usd=rendered.cost_usd, prediction_id=rendered.prediction_id, reason=reason)
        if rendered.prediction_id:
            self.journal.record(reservation, prediction_id=rendered.prediction_id, status="stored" if sha256 else "lost")
        if sha256 is not None:
            self.ledger.record_paid_request(reservation, sha256=sha256, cost_usd=rendered.cost_usd)

    def wait_until_not_in_flight(self, request: GenerationRequest, *, run_id: str, cancelled: threading.Event,
                                 is_alive: Callable[[str], bool], dead_runs: set[str]) -> None:
        """Wait while a live run holds an open reservation for `request` (it will store the image).

        Holders found dead (`is_alive` false: killed, failed, cancelled) are added to `dead_runs`.
        """
        while True:
            holder = self.ledger.in_flight_elsewhere(request.request_hash, run_id=run_id,
                                                     within_s=IN_FLIGHT_WINDOW_S,
                                                     dead_runs=frozenset(dead_runs))
            if holder is None:
                return
            if not is_alive(holder):
                dead_runs.add(holder)
                continue
            if cancelled.wait(self.policy.poll_interval_s):
                raise GenerationError(request.partition_key, "run terminated while another run made this image")

    def settle_cache_hit(self, request_hash: str, *, cost_usd: float) -> None:
        """Charge reservations left open by a run that stored this image but died before charging it."""
        for reservation in self.ledger.open_reservations_for(request_hash):
            if self.journal.latest_status(reservation.reservation_id) != "succeeded":
                continue  # still being generated elsewhere, or its fate is unknown: leave it open
            reason = "charged on a later run: the image was stored before the earlier run died"
            amount = cost_usd
            if not is_finite_number(cost_usd) or cost_usd < 0:
                # An older version could store NaN here; the reservation is what it cost at most.
                amount = reservation.amount_usd
                reason += f"; the stored cost {cost_usd!r} is not a usable amount, so the reservation is charged"
            self.ledger.charge(reservation, amount_usd=amount, prediction_id=None, reason=reason)

    def _reserve(self, request: GenerationRequest, run_id: str, session: RenderSession,
                 dead_runs: frozenset[str] = frozenset(), is_alive: Callable[[str], bool] | None = None) -> Reservation:
        journaled = self.journal.resumable(request.request_hash)
        if journaled is not None:
            adopted = self.ledger.open_reservation(journaled.reservation_id)
            if adopted is not None:
                session.resume_prediction_id = journaled.prediction_id
                return adopted
        orphan = self._adopt_unjournaled(request, run_id, session, dead_runs, is_alive)
        if orphan is not None:
            return orphan
        self._close_expired(request)
        # Raises `BudgetExhaustedError` or `RequestInFlightError` itself, with their structured fields.
        return self.ledger.reserve(
            run_id=run_id, partition_key=request.partition_key, request_hash=request.request_hash,
            model=request.model, amount_usd=self.backend.reservation_usd(request.model), caps=self.policy.caps,
            in_flight_for_s=IN_FLIGHT_WINDOW_S, dead_runs=dead_runs,
        )

    def _adopt_unjournaled(self, request: GenerationRequest, run_id: str, session: RenderSession,
                           dead_runs: frozenset[str], is_alive: Callable[[str], bool] | None) -> Reservation | None:
        """Another run's open reservation with no journaled prediction, older than the in-flight
        window or held by a run known to be dead: that run died between reserving and journaling,
        perhaps after the provider created (and will bill) a prediction. Ask the provider; carry on
        with that prediction if it exists, else release the dead run's reservation."""
        for reservation, reserved_at in self.ledger.unjournaled_reservations(
            request.request_hash, run_id=run_id, older_than_s=IN_FLIGHT_WINDOW_S, dead_runs=dead_runs, own_run_too=True
        ):
            # This run's own open, unjournaled reservation: an earlier attempt's create answer was
            # lost (CreateOutcomeUnknown). Its prediction may exist: search before creating again.
            own = reservation.run_id == run_id
            prediction_id = self.backend.find_prediction(
                request, created_after=reserved_at - PROVIDER_CLOCK_SKEW,
                exclude=self.journal.prediction_ids(request.request_hash),  # each is paid for by one reservation
            )
            if prediction_id is not None:
                why = "after the answer to its create was lost" if own else "after its run died"
                self.journal.record(reservation, prediction_id=prediction_id, status="created",
                                    detail=f"found at the provider by run {run_id} {why}")
                session.resume_prediction_id = prediction_id
                return reservation
            if own:
                self.ledger.release(reservation, reason="released: the answer to its create was lost, and the "
                                    "provider has no such prediction")
                continue
            dead = reservation.run_id in dead_runs or (is_alive is not None and not is_alive(reservation.run_id))
            if dead:
                self.ledger.release(reservation, reason="released: its run ended before the provider created anything")
        return None

    def _close_expired(self, request: GenerationRequest) -> None:
        """Journaled predictions too old to re-attach to (the provider deleted their output) would
        keep their reservations open for ever: charge what the provider billed for each, once it
        says so, and journal them `expired`."""
        for journaled in self.journal.expired(request.request_hash):
            reservation = self.ledger.open_reservation(journaled.reservation_id)
            if reservation is None:
                continue
            try:
                billed = self.backend.billed_for(request, journaled.prediction_id)
            except GenerationError:
                billed = None  # the provider cannot say now: never let that block a new image
            if billed is None:
                continue  # not finished yet, or nothing the provider can tell: look again next time
            self.ledger.charge(reservation, amount_usd=billed, prediction_id=journaled.prediction_id,
                               reason=f"billed by the provider; prediction {journaled.prediction_id}'s output expired "
                               "before it was stored")
            self.journal.record(reservation, prediction_id=journaled.prediction_id, status="expired")

    def _output_not_fetched(self, request: GenerationRequest, reservation: Reservation, prediction_id: str,
                            exc: OutputNotFetched) -> NoReturn:
        """A paid output could not be downloaded. Re-attach to it on later attempts, at most
        MAX_FETCH_TRIES times in all (runs together); then book what the provider billed, mark the
        prediction `unfetchable` (never re-attached again) and fail the image: the next run creates a
        new prediction. Raises in every case."""
        self.journal.record(reservation, prediction_id=prediction_id, status="fetch_failed", detail=exc.reason[:500])
        tries = self.journal.count(prediction_id, "fetch_failed")
        if tries < MAX_FETCH_TRIES:
            raise OutputNotFetched(
                request.partition_key,
                f"{exc.reason} (try {tries} of {MAX_FETCH_TRIES}); prediction {prediction_id} keeps its reservation "
                "and is re-attached", prediction_id=prediction_id, provider_billed_usd=exc.provider_billed_usd,
            ) from None
        billed, note = exc.provider_billed_usd, ""
        if billed is None:
            billed, note = reservation.amount_usd, "; the provider's bill is not known, so the reservation is charged"
        reason = f"prediction {prediction_id}'s output could not be fetched in {tries} tries ({exc.reason})"
        self.ledger.charge(reservation, amount_usd=billed, prediction_id=prediction_id,
                           reason=f"billed by the provider, output never delivered: {reason}{note}")
        self.journal.record(reservation, prediction_id=prediction_id, status="unfetchable", detail=reason[:500])
        raise PaidFailure(request.partition_key, f"{reason}; charged what the provider billed, the next run creates "
                          "a new prediction", billed_usd=billed, prediction_id=prediction_id, final=True) from None

    def _close_failed(self, reservation: Reservation | None, failure: PaidFailure) -> None:
        if reservation is None:
            return
        if failure.billed_usd > 0:
            note = f"; {failure.billing_note}" if failure.billing_note else ""
            self.ledger.charge(reservation, amount_usd=failure.billed_usd, prediction_id=failure.prediction_id,
                               reason=f"billed by the provider for a failed image: {failure.reason}{note}")
        else:
            self.ledger.release(reservation, prediction_id=failure.prediction_id, reason=f"released: {failure.reason}")
        if failure.prediction_id:
            self.journal.record(reservation, prediction_id=failure.prediction_id, status="failed",
                                detail=failure.reason[:500])

    def _verify(self, request: GenerationRequest, rendered: RenderedImage, reservation: Reservation | None) -> None:
        """Refuse bytes that are not a PNG of the requested size; the provider's bill is still recorded.

        The header is read first: bytes claiming another size are refused without being decoded."""
        try:
            header = read_header(rendered.png)
            problem = None
            if header.format != "PNG" or (header.width, header.height) != (request.width, request.height):
                problem = (f"backend returned a {header.format} of {header.width}x{header.height}, "
                           f"expected a PNG of {request.width}x{request.height}")
            else:
                inspect_image(rendered.png, max_pixels=header.pixels)
        except ValueError as exc:
            problem = f"backend returned {exc}"
        if problem is None:
            return
        self._close_failed(
            reservation,
            PaidFailure(request.partition_key, problem, billed_usd=rendered.cost_usd, prediction_id=rendered.prediction_id),
        )
        raise InvalidImageError(request.partition_key, problem)


def _summary(last: GenerationError, history: list[AttemptRecord], over_spend: bool) -> str:
    limit = "; retry spend limit reached" if over_spend else ""
    return f"{last.reason} ({summarize_attempts(history)}{limit})"


def _unavailable(since: datetime, history: list[AttemptRecord], circuit: CircuitBreaker) -> str:
    """Why a request gave up on an open circuit: since when, the provider's last error, what was tried."""
    last = history[-1].detail if history else circuit.last_provider_error() or "no provider error was recorded"
    tried = f" ({summarize_attempts(history)})" if history else "; no request was sent for this image"
    return f"provider unavailable since {since:%Y-%m-%d %H:%M:%S} UTC: {last}{tried}"


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, GenerationError) else exc.__class__.__name__

