"""Small PNG charts (matplotlib, headless) for reports in the Dagster UI."""

from __future__ import annotations

import io


def spend_chart(by_day: dict[str, float], by_model: dict[str, float]) -> bytes:
    """Two bar charts side by side: USD per day and USD per model."""
    # Imported here: matplotlib takes half a second to import, and definitions must load fast.
    import matplotlib

    matplotlib.use("Agg")  # no display: render to memory only
    import matplotlib.pyplot as plt
    figure, (days, models) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for axis, data, title in ((days, by_day, "spend per day (UTC)"), (models, by_model, "spend per model")):
        labels = list(data) or ["none"]
        axis.bar(range(len(labels)), list(data.values()) or [0.0], color="#2a6f97")
        axis.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        axis.set_title(title)
        axis.set_ylabel("USD")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    plt.close(figure)
    return out.getvalue()
