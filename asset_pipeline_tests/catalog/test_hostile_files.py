"""Hostile catalog files: invisible and control characters, a key set twice in one entry, files that
are not regular (a FIFO must not block), oversized files and too many entries; each refused in one
line naming the file, the entry and the field, also through `asset-pipeline catalog validate`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from asset_pipeline.catalog import load_catalog
from asset_pipeline.catalog.loader import MAX_ENTRIES
from asset_pipeline.catalog.yaml_source import MAX_CATALOG_BYTES
from asset_pipeline.errors import CatalogError
from asset_pipeline_testing.helpers import write_catalog

INVISIBLE = ["\x85", "\x9b", "\x1b", "\u200b", "\u200d", "\u200e", "\u202a", "\u202e", "\u2066", "\u2069", "\ufeff"]


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_control_bidi_and_zero_width_characters_are_refused(tmp_path: Path, char: str, field: str) -> None:
    entry = {"id": "hero-1", "category": "hero", "prompt": "a family", field: f"walking{char} in a park"}
    [problem] = problems_of(write_catalog(tmp_path / "c.yaml", [entry]))
    assert f"entry 'hero-1' (#0): field '{field}': must not contain control, bidi or zero-width characters" in problem
    assert f"U+{ord(char):04X} at position 7" in problem and char not in problem


@pytest.mark.parametrize("char", ["\u200b", "\u202e", "\x85"])
def test_invisible_characters_in_ids_are_refused(tmp_path: Path, char: str) -> None:
    [problem] = problems_of(write_catalog(tmp_path / "c.yaml", [{"id": f"hero{char}1", "category": "hero", "prompt": "p"}]))
    assert "field 'id': must be a slug" in problem and char not in problem


def test_ordinary_unicode_tabs_and_newlines_are_kept(tmp_path: Path) -> None:
    catalog = load_catalog(write_catalog(tmp_path / "c.yaml", [
        {"id": "a", "category": "icon", "prompt": "Café «quote» 日本語 — emoji 🙂\nsecond line\twith a tab"}]))
    assert "日本語" in catalog.get("a").prompt


def test_a_key_set_twice_in_one_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("images:\n  - id: first\n    category: icon\n    prompt: ok\n"
                    "  - id: hero-2\n    category: hero\n    prompt: a calm family\n    prompt: an angry mob\n")
    [problem] = problems_of(path)
    assert problem == f"{path}: entry 'hero-2': field 'prompt': set twice in one mapping (line 8); remove one"


def test_a_top_level_key_set_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("images:\n  - {id: a, category: icon, prompt: p}\nimages:\n  - {id: b, category: icon, prompt: p}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: field 'images': set twice in one mapping (line 3)")


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "catalog.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    [problem] = problems_of(fifo)
    assert problem == f"{fifo}: cannot read the catalog: it is a FIFO, not a regular file"
    assert time.monotonic() - started < 2


def test_a_directory_is_refused(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path)
    assert "cannot read the catalog" in problem and ("directory" in problem)


def test_a_device_is_refused() -> None:
    [problem] = problems_of(Path("/dev/zero"))
    assert problem == "/dev/zero: cannot read the catalog: it is a device or socket, not a regular file"


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as handle:
        handle.write("images:\n")
        line = "  - {id: a, category: icon, prompt: " + "p" * 200 + "}\n"
        handle.write(line * (MAX_CATALOG_BYTES // len(line) + 2))
    started = time.monotonic()
    [problem] = problems_of(path)
    assert problem == f"{path}: cannot read the catalog: it is larger than the 5 MB a catalog may have"
    assert time.monotonic() - started < 2


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("images:\n" + "".join(f"  - {{id: i{n}, category: c, prompt: p}}\n" for n in range(MAX_ENTRIES + 1)))
    [problem] = problems_of(path)
    assert problem == f"{path}: field 'images': has {MAX_ENTRIES + 1} entries; a catalog may have at most {MAX_ENTRIES}"


def test_the_cli_validator_refuses_a_fifo_without_blocking(tmp_path: Path, run_cli) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    done = run_cli("asset-pipeline", "catalog", "validate", str(fifo))
    assert done.returncode == 1
    assert f"{fifo}: cannot read the catalog: it is a FIFO, not a regular file" in done.stderr
    assert "Traceback" not in done.stderr
