"""Runs with the image store on S3-compatible object storage (moto's server on loopback, the
standard AWS variables): a range run, variants, the manifest and the contact sheet read back from
the bucket, metadata carrying the object URL; and a paid run whose uploads are refused: nothing
becomes visible, the ledger still equals the provider's bill, and no reservation stays open."""

import json
import uuid
from pathlib import Path

import pytest

from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.money import BudgetCaps
from asset_pipeline_testing.helpers import materializations, materialize, pipeline_defs, write_catalog
from asset_pipeline_testing.money_invariants import money_violations
from asset_pipeline_testing.s3 import running_moto_s3


@pytest.fixture(scope="module")
def s3():
    with running_moto_s3() as server:
        yield server


@pytest.fixture
def store_url(s3, monkeypatch):
    for name, value in s3.aws_environment().items():
        monkeypatch.setenv(name, value)
    bucket = f"run-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    s3.refuse_puts.clear()
    return bucket, f"s3://{bucket}/estate/v1"


def entries(count: int, **extra) -> list[dict]:
    return [{"id": f"img-{i:02d}", "category": "icon", "prompt": f"a test icon number {i}", "width": 96,
             "height": 64, "seed": i, **extra} for i in range(count)]


def test_a_range_run_and_the_summaries_on_s3(s3, store_url, tmp_path: Path, instance) -> None:
    bucket, url = store_url
    catalog = write_catalog(tmp_path / "c.yaml", entries(6))
    defs = pipeline_defs(catalog, url, database_url=f"sqlite:///{tmp_path / 'ledger.db'}", max_concurrency=3)
    result = materialize(defs, instance, first="img-00", last="img-05")
    assert result.success
    made = materializations(result)
    assert sorted(made) == [f"img-{i:02d}" for i in range(6)]
    assert all(meta["path"] == f"{url}/images/{key}.png" for key, meta in made.items())
    keys = s3.keys(bucket, "estate/v1/")
    assert sum(k.startswith("estate/v1/images/") for k in keys) == 6
    assert sum(k.startswith("estate/v1/requests/") for k in keys) == 6
    assert not any(Path(k).name.startswith(".write-probe") for k in keys)  # the setup probe was deleted
    for selection in ("image_variants", "asset_manifest", "contact_sheet"):
        if selection == "image_variants":
            assert materialize(defs, instance, selection=selection, first="img-00", last="img-05").success
        else:
            assert materialize(defs, instance, selection=selection).success
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key="estate/v1/manifest.json")["Body"].read())
    assert "img-03" in json.dumps(manifest) and url in json.dumps(manifest)
    assert "estate/v1/contact_sheet/page-01.png" in s3.keys(bucket, "estate/v1/contact_sheet/")
    again = materialize(defs, instance, first="img-00", last="img-05")  # the cache index on S3
    assert all(meta["cache_hit"] for meta in materializations(again).values())


def test_refused_uploads_leave_nothing_visible_and_the_ledger_equal_to_the_bill(
    s3, store_url, fake_replicate, tmp_path: Path, instance
) -> None:
    bucket, url = store_url
    catalog = write_catalog(tmp_path / "c.yaml", entries(2))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    defs = pipeline_defs(catalog, url, backend="replicate", database_url=ledger_url, max_attempts=1)
    s3.refuse_puts.append("/estate/v1/objects/")
    result = materialize(defs, instance, first="img-00", last="img-01")
    assert not result.success and materializations(result) == {}
    assert s3.refused >= 2
    assert s3.keys(bucket, "estate/v1/") == []  # no image, no partition key, no index entry
    caps = BudgetCaps(20, 10, 20)
    assert money_violations(ledger_engine(ledger_url), caps=caps, provider_bill_usd=fake_replicate.bill_usd) == []
