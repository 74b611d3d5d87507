"""Progress hidden in a hosted model's logs. Pure logic.

Replicate reports no progress field; diffusion models on it print tqdm bars such as
` 50%|#####     | 2/4 [00:01<00:01, 1.9it/s]`. The last complete bar says how far the
prediction is.
"""

from __future__ import annotations

import re

_TQDM = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)")


def step_from_logs(logs: str | None) -> tuple[int, int] | None:
    """(steps done, total steps) from the last tqdm bar in `logs`, or None if there is none."""
    if not logs:
        return None
    matches = _TQDM.findall(logs[-4000:])
    if not matches:
        return None
    _, done, total = matches[-1]
    return (int(done), int(total)) if int(total) > 0 else None
