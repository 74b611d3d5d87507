"""`spend_report`: where the money went, by day and by model, from the ledger's charges."""

import json

import dagster as dg

from asset_pipeline.assets.keys import SPEND_REPORT
from asset_pipeline.imaging.charts import spend_chart
from asset_pipeline.imaging.thumbnails import preview_markdown
from asset_pipeline.resources.image_store import ImageStore
from asset_pipeline.resources.ledger import LedgerResource
from asset_pipeline.storage.atomic import atomic_write


@dg.asset(key=SPEND_REPORT, kinds={"json", "png"}, description="Spend by day and by model, with a chart.")
def spend_report(ledger: LedgerResource, image_store: ImageStore) -> dg.MaterializeResult:
    spend = ledger.spend_summary()
    by_day, by_model = spend.by_day, spend.by_model
    document = {"total_usd": spend.total_usd, "by_day": by_day, "by_model": by_model,
                "open_reservations": spend.open_reservations, "reserved_usd": spend.reserved_usd}
    json_path, chart_path = image_store.resolve("spend_report.json"), image_store.resolve("spend_report.png")
    atomic_write(json_path, json.dumps(document, indent=2).encode())
    chart = spend_chart(by_day, by_model)
    atomic_write(chart_path, chart)
    table = "\n".join(["| model | USD |", "| --- | ---: |", *(f"| {m} | {usd:.4f} |" for m, usd in by_model.items())])
    return dg.MaterializeResult(
        metadata={
            "total_usd": dg.MetadataValue.float(spend.total_usd),
            "by_day": by_day,
            "by_model": dg.MetadataValue.md(table),
            "chart": dg.MetadataValue.md(preview_markdown(chart, alt="spend", max_side=800)),
            "path": dg.MetadataValue.path(str(json_path)),
        }
    )
