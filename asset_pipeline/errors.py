"""Every error the pipeline raises on purpose: one tree, each class defined here, raised where the
fault arises (the ledger raises `BudgetExhaustedError` itself; nothing is re-wrapped on the way up),
each with structured fields.

    AssetPipelineError
    ├── CatalogError              the catalog file is unreadable or invalid    problems (CatalogProblem: file, entry, field, message)
    ├── ConfigurationError        a setting or environment variable is unusable    setting
    ├── ReviewError               a review cannot be recorded: bad partition, unknown image, bad note    field
    ├── StoreError                the image store cannot read or write an image    path
    │   └── UnsafePathError       a path would leave the store's root
    ├── NonFiniteAmount           (also a ValueError) an amount that is NaN, infinite or no number: never booked    amount
    ├── ImageRefused              (also a ValueError) bytes that are no image we accept: undecodable, too many pixels
    ├── HubUnavailable            the progress hub did not accept a batch    url, status
    └── GenerationError           one partition's image could not be produced    partition_key, reason
        ├── InvalidImageError     a backend returned bytes that are not the image asked for
        ├── BudgetExhaustedError  a spending cap would be passed; nothing was sent    cap, limit_usd, committed_usd, requested_usd
        ├── RequestInFlightError  another run is generating the same image right now; nothing was sent    run_id
        ├── CircuitOpenError      the provider's circuit is open (raised by the breaker; the metered core
        │                         raises it again, "provider unavailable since ...", once the outage
        │                         outlasts max_outage_s)    provider, since
        ├── ProviderError         the provider refused or failed a request    status, retry_after
        │   └── CreateOutcomeUnknown  a create's answer was lost or garbled: the prediction may exist
        ├── OutputNotFetched      the provider made the image but we could not download it yet    prediction_id, provider_billed_usd
        │   └── OutputRefused     its output can never be used: host, scheme, size or encoding refused    billed_usd
        ├── PaidFailure           failed after the provider billed    billed_usd, prediction_id, final, billing_note
        │   └── PaidInvalidImage  (also an InvalidImageError) a billed output that is no usable image
        ├── RetriesExhausted      every applicable retry strategy failed    attempts, last
        ├── RenderCancelled       the run was terminated while a local pipeline was denoising
        └── PromptError           one partition's prompt could not be written    failure_class, retry_after_s

Every `GenerationError` has `partition_key` and `reason` (safe to show and log); `str()` is
"<partition_key>: <reason>". Messages never contain secrets: they name files, catalog entries,
fields, partition keys and amounts only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class AssetPipelineError(Exception):
    """Base class for the pipeline's own errors."""


@dataclass(frozen=True)
class CatalogProblem:
    """One fault in a catalog file, located as precisely as the file allows."""

    file: str
    message: str
    entry: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.entry is not None:
            where.append(f"entry {self.entry}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"


class CatalogError(AssetPipelineError):
    """The catalog cannot be used; `problems` lists every fault found, one line each."""

    def __init__(self, problems: list[CatalogProblem]):
        self.problems = tuple(problems)
        count = len(self.problems)
        header = f"invalid image catalog ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class ConfigurationError(AssetPipelineError):
    """A setting is missing or unusable; `setting` names it (never its secret value)."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class StoreError(AssetPipelineError):
    """The image store failed to read or write `path`."""

    def __init__(self, path: Path | str, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class UnsafePathError(StoreError):
    """`path` would leave the store's root or is not a name the store accepts; `reason` says which."""


class GenerationError(AssetPipelineError):
    """The image for `partition_key` could not be produced; `reason` is safe to show and log."""

    def __init__(self, partition_key: str, reason: str):
        self.partition_key = partition_key
        self.reason = reason
        super().__init__(f"{partition_key}: {reason}")


class InvalidImageError(GenerationError):
    """A backend returned bytes that do not decode to an image of the requested size."""


class BudgetExhaustedError(GenerationError):
    """A cap would be passed; raised by `BudgetLedger.reserve` before anything is sent.

    `cap` names it (total, daily, per-run), `limit_usd` is its size, `committed_usd` what is
    already spent or reserved against it, `requested_usd` what this image would reserve.
    """

    def __init__(self, partition_key: str, reason: str, *, cap: str, limit_usd: float, committed_usd: float,
                 requested_usd: float):
        super().__init__(partition_key, reason)
        self.cap = cap
        self.limit_usd = limit_usd
        self.committed_usd = committed_usd
        self.requested_usd = requested_usd


class ProviderError(GenerationError):
    """The provider refused or failed; `status` is its HTTP status, `retry_after` its Retry-After header."""

    def __init__(self, partition_key: str, reason: str, *, status: int | None = None, retry_after: str | None = None):
        super().__init__(partition_key, reason)
        self.status = status
        self.retry_after = retry_after


class CircuitOpenError(GenerationError):
    """The circuit of `provider` is open since `since` (UTC); the request was not sent.

    `CircuitBreaker.before_request` raises it while the circuit is open; the metered core waits
    and raises it again (reason "provider unavailable since ...", naming the provider's last
    error) once the outage outlasts its `max_outage_s`.
    """

    def __init__(self, partition_key: str, reason: str, *, provider: str, since: datetime):
        super().__init__(partition_key, reason)
        self.provider = provider
        self.since = since


class RetriesExhausted(GenerationError):
    """Every strategy was tried (or none applies); `attempts` lists them, `last` is the final error."""

    def __init__(self, partition_key: str, reason: str, *, attempts: list, last: GenerationError):
        super().__init__(partition_key, reason)
        self.attempts = attempts
        self.last = last


class OutputNotFetched(GenerationError):
    """The prediction succeeded but its output could not be downloaded; a later attempt re-attaches.

    `prediction_id` and `provider_billed_usd` (what the provider billed for it), when the backend
    knows them, let the generator close the reservation once the output is found unfetchable for
    good. (Not `billed_usd`: nothing is booked yet while the output may still be fetched.)
    """

    def __init__(self, partition_key: str, reason: str, *, prediction_id: str | None = None,
                 provider_billed_usd: float | None = None):
        super().__init__(partition_key, reason)
        self.prediction_id = prediction_id
        self.provider_billed_usd = provider_billed_usd


class CreateOutcomeUnknown(ProviderError):
    """A create request may have reached the provider but its answer was lost or unreadable: the
    reservation stays open and the provider is searched for the prediction before any new create."""


class OutputRefused(OutputNotFetched):
    """The prediction succeeded but its output is refused for good (a host outside the delivery
    hosts, another scheme, a redirect loop, too many bytes, a garbage `data:` URI, an expired file).

    `prediction_id` names it and `billed_usd` is what the provider billed for it; retrying the same
    request would only pay again for the same answer.
    """

    def __init__(self, partition_key: str, reason: str, *, prediction_id: str, billed_usd: float):
        super().__init__(partition_key, reason, prediction_id=prediction_id, provider_billed_usd=billed_usd)
        self.billed_usd = billed_usd


class RenderCancelled(GenerationError):
    """The run was terminated mid-denoising; the loop stopped at the next step, before decoding."""


class RequestInFlightError(GenerationError):
    """Another run (`run_id`) holds an open, recent reservation for the same request hash; raised by
    `BudgetLedger.reserve`, nothing was sent."""

    def __init__(self, partition_key: str, reason: str, *, run_id: str):
        super().__init__(partition_key, reason)
        self.run_id = run_id


class PaidFailure(GenerationError):
    """The provider call failed after money may have been spent; `billed_usd` is what it billed.

    `final` means retrying the identical request would only pay again for the same result (a
    succeeded prediction whose output is unusable): the image fails with this cause instead.
    `billing_note` says why `billed_usd` is not simply the provider's own report. `input_error`
    means our inputs caused it (a ComfyUI node raised ValueError): final, and no sign of the
    provider's health, so it does not feed the circuit breaker.
    """

    def __init__(self, partition_key: str, reason: str, *, billed_usd: float, prediction_id: str | None,
                 final: bool = False, billing_note: str | None = None, input_error: bool = False):
        super().__init__(partition_key, reason)
        self.billed_usd = billed_usd
        self.prediction_id = prediction_id
        self.final = final or input_error
        self.input_error = input_error
        self.billing_note = billing_note


class PaidInvalidImage(PaidFailure, InvalidImageError):
    """The provider billed for an output that is no usable image (undecodable, a pixel bomb, far
    from the requested size). The answer is deterministic for the request, so it is not retried."""


class NonFiniteAmount(AssetPipelineError, ValueError):
    """An amount that is NaN, infinite or not a number at all (`amount`, as given): never booked."""

    def __init__(self, message: str, *, amount: object = None):
        super().__init__(message)
        self.amount = amount


class ImageRefused(AssetPipelineError, ValueError):
    """The bytes are no image we accept (not decodable, or too many pixels); the message says which."""


class HubUnavailable(AssetPipelineError):
    """The progress hub at `url` did not accept a batch; `status` is its HTTP status when it answered.
    The message names the hub's URL and status only."""

    def __init__(self, url: str, message: str, *, status: int | None = None):
        self.url = url
        self.status = status
        super().__init__(message)


class PromptError(GenerationError):
    """The LLM could not write `partition_key`'s prompt. `failure_class`: rate_limited, server_error,
    timeout, connection, invalid_answer, refusal, context_too_long, rejected, budget_exhausted."""

    def __init__(self, partition_key: str, reason: str, *, failure_class: str, retry_after_s: float | None = None):
        super().__init__(partition_key, reason)
        self.failure_class = failure_class
        self.retry_after_s = retry_after_s


class ReviewError(AssetPipelineError):
    """A review was refused; `field` names the input at fault (partition_key, sha256, decision, note,
    prompt_addition). The message never echoes more than a short prefix of the input."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
