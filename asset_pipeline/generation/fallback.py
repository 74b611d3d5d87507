"""Generic fallback images per category, for partitions whose every strategy failed (off by default).

A fallback keeps the website buildable; it is stored for the partition only (never under a request
hash, so the next run tries the real image again), marked `fallback=true`, and fails the
`not_a_fallback` check so it stays visible until a retry replaces it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from asset_pipeline.generation.placeholder import render_placeholder
from asset_pipeline.generation.request import GenerationRequest
from asset_pipeline.imaging.fit import fit_to_png


def fallback_image(request: GenerationRequest, *, directory: str | None) -> bytes:
    """`<directory>/<category>.png` fitted to the request's size, or a labelled generic card."""
    if directory:
        candidate = Path(directory) / f"{request.category}.png"
        if candidate.is_file():
            return fit_to_png(candidate.read_bytes(), width=request.width, height=request.height).png
    generic = replace(request, prompt=f"generic {request.category} image; the real one failed", seed=0)
    return render_placeholder(generic, title=f"FALLBACK · {request.category}")
