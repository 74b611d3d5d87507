"""What one generation asks a backend for, and its request hash (the de-duplication key).

Two catalog entries that ask for exactly the same picture (same backend, model, prompts, size,
seed, steps, guidance) share one request hash and so one stored image: the second is a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property

from asset_pipeline.catalog.spec import ImageSpec


@dataclass(frozen=True)
class GenerationRequest:
    partition_key: str
    category: str
    backend: str
    model: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int
    steps: int
    guidance: float
    # What else a backend says changes the pixels (the ComfyUI workflow's content hash and mapping);
    # empty for the others, and then left out of the hash so their hashes never change.
    variant: str = ""

    @cached_property
    def request_hash(self) -> str:
        """SHA-256 over everything that changes the pixels (not the partition key or category)."""
        fields = asdict(self)
        del fields["partition_key"], fields["category"]
        if not fields["variant"]:
            del fields["variant"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def build_request(spec: ImageSpec, *, backend: str, model: str, variant: str = "") -> GenerationRequest:
    return GenerationRequest(
        partition_key=spec.id,
        category=spec.category,
        backend=backend,
        model=spec.model or model,
        prompt=spec.full_prompt,
        negative_prompt=spec.negative_prompt,
        width=spec.width,
        height=spec.height,
        seed=spec.render_seed,
        steps=spec.steps,
        guidance=spec.guidance,
        variant=variant,
    )
