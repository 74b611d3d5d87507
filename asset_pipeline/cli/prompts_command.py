"""`asset-pipeline prompts show KEY | diff`: the prompts written from briefs, and what a style or
brief edit would change in the images before anything is re-rendered. Both read only (no LLM call)."""

from __future__ import annotations

import json

import click

from asset_pipeline.cli.context import CommandContext
from asset_pipeline.cli.prompt_state import PromptState, prompt_states
from asset_pipeline.errors import ConfigurationError

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group()
def prompts() -> None:
    """Prompts written from briefs and the style guide."""


@prompts.command()
@click.argument("key")
@json_option
def show(key: str, as_json: bool) -> None:
    """One entry: its brief, the stored prompt, the one its image used, and the one it would get now."""
    context = CommandContext.from_environment()
    if key not in context.catalog.by_id:
        raise ConfigurationError("KEY", f"no entry with id {key[:80]!r} in {context.catalog.source}")
    [state] = prompt_states(context, [key])
    if as_json:
        click.echo(json.dumps(state.as_json(), indent=2))
        return
    click.echo(f"{state.key}  ({state.source})")
    if state.brief:
        click.echo(f"brief       {state.brief}")
    for label, value in (("stored", state.stored), ("image used", state.rendered), ("now", state.current)):
        click.echo(f"{label:<11} {value.prompt if value else '-'}")
        if value and value.negative_prompt:
            click.echo(f"{'':<11} avoid: {value.negative_prompt}")
    if state.current is None:
        click.echo(f"now         needs an LLM call (about ${state.estimate_usd:.6f} reserved)")


@prompts.command()
@click.argument("keys", nargs=-1)
@json_option
def diff(keys: tuple[str, ...], as_json: bool) -> None:
    """Old (what each image was rendered from) vs new (the current prompt) for every entry that would change."""
    context = CommandContext.from_environment()
    unknown = [key for key in keys if key not in context.catalog.by_id]
    if unknown:
        raise ConfigurationError("KEYS", f"no entry with id {unknown[0][:80]!r} in {context.catalog.source}")
    states = prompt_states(context, list(keys) or context.catalog.ids)
    changed = [s for s in states if s.rendered is not None and (s.current or s.stored) not in (None, s.rendered)]
    pending = [s for s in states if s.current is None]
    if as_json:
        click.echo(json.dumps({"changed": [s.as_json() for s in changed], "needs_llm_call": [s.key for s in pending],
                               "unchanged": len(states) - len(changed) - len(pending),
                               "llm_estimate_usd": round(sum(s.estimate_usd for s in pending), 6)}, indent=2))
        return
    for state in changed:
        _print_diff(state)
    click.echo(f"{len(changed)} image(s) would change, {len(pending)} prompt(s) need an LLM call "
               f"(about ${sum(s.estimate_usd for s in pending):.6f} reserved)")


def _print_diff(state: PromptState) -> None:
    click.echo(f"--- {state.key}")
    for line in state.as_json()["diff"]:
        click.echo(f"    {line}")
