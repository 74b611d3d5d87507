"""Groups of settings declared once: the environment reads them and the resources take them as config.

Each block is a `dg.Config` (a pydantic model) with its defaults, bounds and descriptions. The
environment settings (`settings.py`) nest the same classes and read every field from its documented
variable (`settings.BLOCKS` names them, e.g. ASSET_PIPELINE_BUDGET_TOTAL_USD -> `budget.total_usd`);
the resources nest them as run config (`image_generator.budget.total_usd`, `ledger.breaker.cooldown_s`),
defaulting to the operator's values. The diffusers block is `generation/diffusers_options.py`,
because the core backend takes it as it is.

Defaults are factories (`default_factory=lambda: 20.0`), never plain values: Dagster writes a plain
default into the run's config, where the run-config guard could not tell it from a value the run
set; with a factory Dagster leaves it out, and the guard keeps the operator's value
(`resources/run_config_guard.py`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field, field_validator

from asset_pipeline.ledger.circuit import BreakerConfig
from asset_pipeline.ledger.money import MAX_BUDGET_USD, BudgetCaps


class BudgetOptions(dg.Config):
    """Spending caps (ASSET_PIPELINE_BUDGET_*); run config may only lower them."""

    total_usd: float = Field(default_factory=lambda: 20.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False,
                             description="Cap on all spending (ASSET_PIPELINE_BUDGET_TOTAL_USD).")
    daily_usd: float = Field(default_factory=lambda: 10.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False,
                             description="Cap per UTC day (ASSET_PIPELINE_BUDGET_DAILY_USD).")
    per_run_usd: float = Field(default_factory=lambda: 20.0, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False,
                               description="Cap per Dagster run (ASSET_PIPELINE_BUDGET_PER_RUN_USD).")

    @property
    def caps(self) -> BudgetCaps:
        return BudgetCaps(self.total_usd, self.daily_usd, self.per_run_usd)


class RetryOptions(dg.Config):
    """How one image is retried, all strategies together (ASSET_PIPELINE_MAX_ATTEMPTS, ...)."""

    max_attempts: int = Field(default_factory=lambda: 6, ge=1, le=20,
                              description="Attempts per image, all strategies together (ASSET_PIPELINE_MAX_ATTEMPTS).")
    backoff_base_s: float = Field(default_factory=lambda: 1.0, ge=0, le=3600, allow_inf_nan=False,
                                  description="First backoff ceiling for transient errors (ASSET_PIPELINE_BACKOFF_BASE_S).")
    backoff_cap_s: float = Field(default_factory=lambda: 30.0, ge=0, le=3600, allow_inf_nan=False,
                                 description="Longest backoff between attempts (ASSET_PIPELINE_BACKOFF_CAP_S).")
    max_wait_s: float = Field(default_factory=lambda: 120.0, ge=0, le=3600, allow_inf_nan=False,
                              description="Longest wait a rate limit may impose before a retry (ASSET_PIPELINE_MAX_WAIT_S).")
    max_retry_spend_usd: float = Field(default_factory=lambda: 0.10, ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False,
        description="Stop retrying an image once its failed attempts were billed this much; run config may only "
        "lower it (ASSET_PIPELINE_MAX_RETRY_SPEND_USD).",
    )
    fallback_models: list[str] = Field(
        default_factory=list,
        description="Ordered models to fall back to when the model is unavailable (ASSET_PIPELINE_FALLBACK_MODELS, "
        "comma-separated).",
    )
    max_outage_s: float = Field(default_factory=lambda: 600.0, ge=0, le=86_400, allow_inf_nan=False,
        description="Longest provider outage a run waits out before failing its partitions (ASSET_PIPELINE_MAX_OUTAGE_S).",
    )

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """The environment gives one comma-separated string; config gives a list."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


class BreakerOptions(dg.Config):
    """The provider circuit breaker (ASSET_PIPELINE_BREAKER_*), shared by every run through the ledger."""

    failure_rate: float = Field(default_factory=lambda: 0.5, gt=0, le=1, description="Share of failed provider calls in the window "
                                "that opens the circuit (ASSET_PIPELINE_BREAKER_FAILURE_RATE).")
    window_calls: int = Field(default_factory=lambda: 50, ge=1, le=100_000, description="The sliding window: this many most recent "
                              "calls (ASSET_PIPELINE_BREAKER_WINDOW_CALLS).")
    minimum_calls: int = Field(default_factory=lambda: 20, ge=1, le=100_000, description="Calls the window must hold before the failure "
                               "rate counts (ASSET_PIPELINE_BREAKER_MINIMUM_CALLS).")
    window_s: float = Field(default_factory=lambda: 60.0, gt=0, le=86_400, allow_inf_nan=False, description="Calls older than this "
                            "fall out of the window (ASSET_PIPELINE_BREAKER_WINDOW_S).")
    cooldown_s: float = Field(default_factory=lambda: 30.0, gt=0, le=86_400, allow_inf_nan=False, description="How long an open "
                              "circuit stays open (ASSET_PIPELINE_BREAKER_COOLDOWN_S).")
    half_open_calls: int = Field(default_factory=lambda: 3, ge=1, le=1_000, description="Trial requests let through when half-open; a "
                                 "majority of successes closes it (ASSET_PIPELINE_BREAKER_HALF_OPEN_CALLS).")

    @property
    def config(self) -> BreakerConfig:
        return BreakerConfig(failure_rate=self.failure_rate, window_calls=self.window_calls,
                             minimum_calls=self.minimum_calls, window_s=self.window_s, cooldown_s=self.cooldown_s,
                             half_open_calls=self.half_open_calls)
