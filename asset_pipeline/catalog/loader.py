"""Read a catalog YAML file into a validated `Catalog`, reporting every problem at once.

Each entry is validated on its own so one bad entry does not hide the next, and every problem
names the file, the entry (by id when it has a readable one, else by index) and the field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from asset_pipeline.catalog.spec import Catalog, ImageSpec, SpecDefaults
from asset_pipeline.catalog.style import StyleGuide
from asset_pipeline.catalog.yaml_source import (
    CatalogFileProblem,
    DuplicateKey,
    UniqueKeyLoader,
    read_catalog_text,
)
from asset_pipeline.errors import CatalogError, CatalogProblem

_TOP_LEVEL_KEYS = {"defaults", "images", "style"}
MAX_ENTRIES = 10_000


def default_catalog_path() -> Path:
    """The bundled ~490-image estate-planning catalog."""
    return Path(__file__).parent / "data" / "estate_planning.yaml"


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load and validate `path` (default: the bundled catalog); raise `CatalogError` listing every fault."""
    file = Path(path) if path is not None else default_catalog_path()
    name = str(file)
    try:
        text = read_catalog_text(file)
    except CatalogFileProblem as exc:
        raise CatalogError([CatalogProblem(name, f"cannot read the catalog: it {exc}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CatalogError([CatalogProblem(name, f"cannot read the catalog: {exc.__class__.__name__}: {reason}")]) from None
    try:
        document = yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKey as exc:
        entry = f"'{exc.entry}'" if exc.entry is not None and exc.entry.isprintable() else None
        raise CatalogError([CatalogProblem(name, f"set twice in one mapping (line {exc.line}); remove one",
                                           entry=entry, field=exc.key)]) from None
    except yaml.YAMLError as exc:
        raise CatalogError([CatalogProblem(name, f"malformed YAML: {_yaml_reason(exc)}")]) from None
    return parse_catalog(document, source=name)


def parse_catalog(document: Any, *, source: str) -> Catalog:
    """Validate an already-parsed YAML document; `source` names it in messages."""
    problems: list[CatalogProblem] = []
    if not isinstance(document, dict):
        raise CatalogError([CatalogProblem(source, "the catalog must be a mapping with an 'images:' list")])
    for key in sorted(set(document) - _TOP_LEVEL_KEYS, key=str):
        problems.append(CatalogProblem(source, "unknown top-level key (expected 'defaults', 'style' and 'images')", field=str(key)))

    defaults = _parse_defaults(document.get("defaults") or {}, source, problems)
    style = _parse_style(document.get("style"), source, problems)
    raw_images = document.get("images")
    if not isinstance(raw_images, list) or not raw_images:
        problems.append(CatalogProblem(source, "must be a non-empty list of image entries", field="images"))
        raise CatalogError(problems)
    if len(raw_images) > MAX_ENTRIES:
        problems.append(CatalogProblem(source, f"has {len(raw_images)} entries; a catalog may have at most {MAX_ENTRIES}",
                                       field="images"))
        raise CatalogError(problems)

    specs: list[ImageSpec] = []
    for index, raw in enumerate(raw_images):
        spec = _parse_entry(raw, index, defaults, source, problems)
        if spec is not None:
            specs.append(spec)

    for image_id, count in Counter(spec.id for spec in specs).items():
        if count > 1:
            indexes = [str(i) for i, raw in enumerate(raw_images) if isinstance(raw, dict) and raw.get("id") == image_id]
            problems.append(
                CatalogProblem(
                    source,
                    f"duplicate id: used by {count} entries (indexes {', '.join(indexes)})",
                    entry=f"'{image_id}'",
                    field="id",
                )
            )
    if problems:
        raise CatalogError(problems)
    return Catalog(source=source, images=tuple(specs), style=style)


def _parse_style(raw: Any, source: str, problems: list[CatalogProblem]) -> StyleGuide | None:
    """The optional `style:` section; its problems are named `entry style, field ...`."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(CatalogProblem(source, "must be a mapping with a 'guide:'", field="style"))
        return None
    try:
        return StyleGuide.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(CatalogProblem(source, _pydantic_reason(error), entry="style", field=_field(error)))
        return None


def _parse_defaults(raw: Any, source: str, problems: list[CatalogProblem]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        problems.append(CatalogProblem(source, "must be a mapping", field="defaults"))
        return {}
    try:
        SpecDefaults.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(CatalogProblem(source, _pydantic_reason(error), entry="defaults", field=_field(error)))
        return {}
    return raw


def _parse_entry(
    raw: Any, index: int, defaults: dict[str, Any], source: str, problems: list[CatalogProblem]
) -> ImageSpec | None:
    if not isinstance(raw, dict):
        problems.append(CatalogProblem(source, f"must be a mapping, got {type(raw).__name__}", entry=f"#{index}"))
        return None
    entry = _entry_label(raw, index)
    try:
        return ImageSpec.model_validate({**defaults, **raw})
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(CatalogProblem(source, _pydantic_reason(error), entry=entry, field=_field(error)))
        return None


def _entry_label(raw: dict[str, Any], index: int) -> str:
    image_id = raw.get("id")
    if isinstance(image_id, str) and image_id and len(image_id) <= 80 and image_id.isprintable():
        return f"'{image_id}' (#{index})"
    return f"#{index}"


def _field(error: Mapping[str, Any]) -> str | None:
    loc = [str(part) for part in error.get("loc", ())]
    return ".".join(loc) if loc else None


def _pydantic_reason(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "is required"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "string_pattern_mismatch" and error.get("loc", ("",))[0] in ("id", "category"):
        message = "must be a slug: lowercase letters, digits, '-' and '_', 1-80 characters, no path separators"
    value = error.get("input")
    if isinstance(value, (int, float, str)) and error["type"] != "missing":
        shown = repr(value if not isinstance(value, str) or len(value) <= 60 else value[:57] + "...")
        if shown not in message:
            message = f"{message} (got {shown})"
    return message


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem
