"""The two limiters the generation path uses, over a shared store (ledger database or Redis).

`SharedRateLimit` has `TokenBucket`'s interface (`acquire(cancelled) -> bool`), so the metered core
takes either; `AdaptiveConcurrency` hands out in-flight slots under the adaptive limit every run
shares and feeds each answer back into it (`aimd.observe`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from asset_pipeline.limits.aimd import AimdConfig, AimdState, Outcome, initial_state, observe, within
from asset_pipeline.limits.store import LimitStore

SLOT_POLL_S = 0.1  # how often the one waiting thread of a process asks again for a slot
LEASE_S = 30.0  # an in-flight slot of a process that died is free again after this long
REFRESH_EVERY = 20  # at the ceiling, one healthy answer in this many is written to the shared store
# Push-back (a 429, a 5xx, a timeout) lowers the shared limit only when it is sustained: at least
# PUSHBACK_MIN of this process's last PUSHBACK_WINDOW answers, and at least PUSHBACK_SHARE of them.
# A batch meets random faults as a matter of course (issue 12: 30% of requests); halving on each
# lone one kept the limit at 1-4 and made such a run 4x slower, while a provider really pushing
# back answers most requests that way within a few answers.
PUSHBACK_WINDOW = 20
PUSHBACK_MIN = 3
PUSHBACK_SHARE = 0.4


class SharedRateLimit:
    """At most `rate` requests per second across every process sharing `store`, bursts of `burst`."""

    def __init__(self, store: LimitStore, *, key: str, rate: float, burst: int = 1):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.store, self.key, self.interval, self.burst = store, key, 1.0 / rate, burst

    def acquire(self, cancelled: threading.Event | None = None) -> bool:
        """Reserve the next slot of the shared rate and wait for it; False if `cancelled` meanwhile
        (the reserved slot then goes unused: the rate is only ever undershot)."""
        if cancelled is not None and cancelled.is_set():
            return False
        wait = self.store.reserve_rate(self.key, interval=self.interval, burst=self.burst)
        if wait <= 0:
            return True
        if cancelled is None:
            time.sleep(wait)
            return True
        return not cancelled.wait(wait)


@dataclass
class Slot:
    """One request in flight; `report` tells the limiter how the provider answered."""

    limiter: AdaptiveConcurrency
    holder: str
    started: float = field(default_factory=time.monotonic)
    reported: bool = False

    def restart_clock(self) -> None:
        self.started = time.monotonic()

    def report(self, outcome: Outcome) -> None:
        if not self.reported:
            self.reported = True
            self.limiter.observe(outcome, latency_s=time.monotonic() - self.started if outcome == "ok" else None)


class AdaptiveConcurrency:
    """Requests in flight at one provider across every process, under a limit that adapts (AIMD).

    Slots are leases of `lease_s` (default 30 s) that a thread of each process renews every third
    of that while its requests are in flight, so a process killed with -9 frees its slots within
    `lease_s`. Within a process only one thread at a time asks the store for a slot (the others queue on a
    local lock), so waiting costs the database one query per `SLOT_POLL_S` per process, not per
    thread. `on_change(limit)` hears each change of the whole-number limit (the run log, the hub).
    """

    def __init__(self, store: LimitStore, *, key: str, config: AimdConfig, lease_s: float = LEASE_S,
                 on_change: Callable[[int], None] | None = None, adaptive: bool = True):
        self.store, self.key, self.config, self.lease_s, self.adaptive = store, key, config, lease_s, adaptive
        self.on_change = on_change
        self._waiting = threading.Lock()
        self._last_slots: int | None = None
        self._initial = initial_state(config)
        # The shared state as this process last read or wrote it; threads race on these two benignly
        # (at worst one write more or fewer).
        self._seen: AimdState | None = None
        self._skipped = 0
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._recent: deque[bool] = deque(maxlen=PUSHBACK_WINDOW)  # True: push-back
        self._renewer: threading.Thread | None = None

    @property
    def last_seen(self) -> int | None:
        """The limit as this process last read it (no query; for progress messages)."""
        return self._last_slots

    @property
    def limit(self) -> int:
        """The shared limit now (whole requests)."""
        return within(self.store.read_limit(self.key) or self._initial, self.config).slots

    @contextmanager
    def slot(self, cancelled: threading.Event | None = None) -> Iterator[Slot | None]:
        """A slot for one request, released on exit; yields None if `cancelled` while waiting."""
        cancelled = cancelled or threading.Event()
        holder = uuid.uuid4().hex
        got = False
        while not got and not cancelled.is_set():
            if not self._waiting.acquire(timeout=SLOT_POLL_S):
                continue
            try:
                while not cancelled.is_set():
                    got, state = self.store.try_slot(self.key, holder=holder, lease_s=self.lease_s,
                                                     initial=self._initial)
                    self._seen = within(state, self.config)  # another run may have moved it
                    self._announce(self._seen)
                    if got or cancelled.wait(SLOT_POLL_S):
                        break
            finally:
                self._waiting.release()
        if not got:
            yield None
            return
        self._hold(holder)
        try:
            yield Slot(self, holder)
        finally:
            with self._held_lock:
                self._held.discard(holder)
            self.store.release_slot(self.key, holder=holder)

    def _hold(self, holder: str) -> None:
        with self._held_lock:
            self._held.add(holder)
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew, name="provider-slot-leases", daemon=True)
                self._renewer.start()

    def _renew(self) -> None:
        """Keep this process's leases alive while it holds any; ends when it holds none."""
        while True:
            time.sleep(self.lease_s / 3)
            with self._held_lock:
                holders = list(self._held)
                if not holders:
                    self._renewer = None
                    return
            try:
                self.store.renew_slots(self.key, holders=holders, lease_s=self.lease_s)
            except Exception:  # noqa: BLE001 - the store is briefly unreachable: try again next time
                pass

    def observe(self, outcome: Outcome, *, latency_s: float | None) -> None:
        if outcome == "neutral" or not self.adaptive:
            return
        if not self._sustained(outcome):
            return  # a lone fault among healthy answers says nothing about load
        now = time.time()
        if outcome == "ok" and self._healthy_at_ceiling(latency_s, now):
            return  # nothing would change but the baseline's last digits: spare the shared store a write
        state = self.store.update_limit(
            self.key, lambda current: observe(within(current, self.config), self.config, outcome=outcome,
                                              latency_s=latency_s, now=now),
            initial=self._initial)
        self._seen = state
        self._announce(state)

    def _sustained(self, outcome: Outcome) -> bool:
        """Record `outcome` in this process's window; True unless it is push-back that is not yet sustained."""
        with self._held_lock:
            self._recent.append(outcome != "ok")
            pushback, answers = sum(self._recent), len(self._recent)
        return outcome == "ok" or (pushback >= PUSHBACK_MIN and pushback >= PUSHBACK_SHARE * answers)

    def _healthy_at_ceiling(self, latency_s: float | None, now: float) -> bool:
        """A healthy answer while the limit sits at its ceiling changes nothing shared; every
        `REFRESH_EVERY`th one is still written so the shared latency baseline keeps up."""
        seen = self._seen
        self._skipped += 1
        if seen is None or seen.limit < self.config.max_limit or self._skipped >= REFRESH_EVERY:
            self._skipped = 0
            return False
        after = observe(seen, self.config, outcome="ok", latency_s=latency_s, now=now)
        if after.limit < seen.limit:  # slow: a decrease, which must be shared at once
            self._skipped = 0
            return False
        self._seen = after
        return True

    def _announce(self, state: AimdState) -> None:
        slots = state.slots
        if slots != self._last_slots:
            self._last_slots = slots
            if self.on_change is not None:
                self.on_change(slots)
