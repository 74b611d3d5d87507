"""Run config may tighten what the operator configured, never loosen it (issue 11, invariant 4).

The operator's environment (`ASSET_PIPELINE_*`, bound in `definitions.py`) is the authority for
the backend, the ledger database, the data directory, secrets and the caps. A run config (the
launchpad, `--config-json`) may lower a cap and tune harmless knobs; changing a fixed field or
raising a cap fails the run at resource setup with one line naming the field. The failure is
`dg.Failure(allow_retries=False)`: configuration does not get better by retrying.

What the operator configured is the resource's config default in the code location (Dagster curries
the constructor's values into the resource's config schema); what the run got is
`context.resource_config`. Both are public parts of `InitResourceContext`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import BaseModel

from asset_pipeline.errors import ConfigurationError


def configuration_failure(error: ConfigurationError) -> dg.Failure:
    """A run failure for a configuration problem, which Dagster's retry policy must not retry."""
    return dg.Failure(description=str(error), allow_retries=False)


def enforce_operator_config(
    resource: dg.ConfigurableResource, context: dg.InitResourceContext, *, label: str,
    fixed: Mapping[str, str], ceilings: Mapping[str, str] = {},
) -> None:
    """Refuse run config that changes a `fixed` field or raises a `ceilings` field.

    Both map a field (dotted for nested config, e.g. `diffusers.gpu_hour_usd`) to the environment
    variable the operator sets it with. Also re-reads `dg.EnvVar` fields that a partial run config
    left as the variable's name (Dagster copies the unresolved `EnvVar` in that case), and keeps
    the operator's values of nested config fields the run config did not set.
    """
    # `resource` is frozen; this instance exists for this run only and is set up once, so the
    # corrections below are made in place with object.__setattr__.
    defaults = _operator_defaults(context)
    if defaults is None:  # built outside a code location (direct use in tests): nothing to compare
        return
    operator = type(resource)(**_resolve_env(defaults))
    given = context.resource_config or {}
    for name, value in given.items():
        nested = getattr(operator, name, None)
        if isinstance(nested, BaseModel) and isinstance(value, Mapping):
            # Dagster hands a nested config class only the sub-fields the run set (or none): the
            # others must stay the operator's, not the class's defaults.
            object.__setattr__(resource, name, type(nested)(**{**dict(nested), **value}))
    for name, variable in fixed.items():
        if _given(given, name) and _plain(_get(resource, name)) != _plain(_get(operator, name)):
            raise configuration_failure(ConfigurationError(
                f"{label}.{name}", f"run config may not change it; the operator sets it with {variable}"))
    for name, variable in ceilings.items():
        value, limit = _get(resource, name), _get(operator, name)
        if _given(given, name) and value is not None and limit is not None and value > limit:
            raise configuration_failure(ConfigurationError(
                f"{label}.{name}", f"run config may only lower it: {value:g} is above the operator's {limit:g} "
                                   f"(raise {_where(variable)} instead)"))
    for name, value in defaults.items():
        if _is_env_var(value) and name not in given:
            object.__setattr__(resource, name, getattr(operator, name))


def _where(variable: str) -> str:
    return f"{variable} in the environment" if variable.startswith("ASSET_PIPELINE_") else variable


def _operator_defaults(context: dg.InitResourceContext) -> dict[str, Any] | None:
    resource_def = context.resource_def
    if resource_def is None or resource_def.config_schema is None:
        return None
    field = resource_def.config_schema.as_field()
    return dict(field.default_value) if field.default_provided and isinstance(field.default_value, Mapping) else None


def _is_env_var(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"env"}


def _resolve_env(value: Any) -> Any:
    if _is_env_var(value):
        return os.environ.get(value["env"])
    if isinstance(value, Mapping):
        return {key: _resolve_env(item) for key, item in value.items()}
    return value


def _given(config: Mapping[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _get(resource: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        resource = getattr(resource, part)
    return resource


def _plain(value: Any) -> Any:
    """Comparable form of a config value (config classes become dicts)."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump())
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
