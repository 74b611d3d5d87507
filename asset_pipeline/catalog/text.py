"""Text rules shared by the catalog's models: no control, bidi or zero-width characters, no blanks.

A prompt that shows one thing and sends another (a bidi override, a zero-width joiner) is refused
wherever text enters the pipeline: written prompts, briefs, the style guide and LLM answers.
"""

from __future__ import annotations

import re

# C0 (but tab and newline) and C1 controls, DEL, and invisible characters that change how text
# reads or compares: zero-width U+200B-U+200F, bidi embeddings/overrides U+202A-U+202E and isolates
# U+2066-U+2069, the byte order mark U+FEFF (a prompt would show one thing and send another).
CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_text(value: str) -> str:
    found = CONTROL_CHARS.search(value)
    if found:
        raise ValueError(f"must not contain control, bidi or zero-width characters "
                         f"(U+{ord(found.group()):04X} at position {found.start()})")
    return value.strip()


def non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value
