"""Review verdicts in the ledger (SQLite and PostgreSQL): state per exact image, takes, hostile input."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from asset_pipeline.catalog.spec import Catalog, ImageSpec
from asset_pipeline.errors import ReviewError
from asset_pipeline.ledger.database import ledger_engine
from asset_pipeline.ledger.reviews import (
    MAX_NOTE_CHARS,
    all_reviews,
    catalog_with_takes,
    record_review,
    review_states,
    takes,
)
from asset_pipeline_testing.postgres import fresh_database

OLD = hashlib.sha256(b"take 0").hexdigest()
NEW = hashlib.sha256(b"take 1").hexdigest()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_database() as url:
        engine = ledger_engine(url)
        yield engine
        engine.dispose()


def test_a_verdict_holds_for_its_image_only(engine: Engine) -> None:
    record_review(engine, partition_key="hero-a", sha256=OLD, decision="rejected", note="hands",
                  prompt_addition="no text in the image")
    assert review_states(engine, {"hero-a": OLD})["hero-a"][0] == "rejected"
    # The new take replaced the image: the rejection does not carry over to it.
    state, review = review_states(engine, {"hero-a": NEW, "icon-b": None})["hero-a"]
    assert (state, review) == ("unreviewed", None)
    assert review_states(engine, {"icon-b": None})["icon-b"] == ("unreviewed", None)
    assert takes(engine)["hero-a"].as_tuple() == (1, ("no text in the image",))


def test_takes_count_distinct_rejected_images(engine: Engine) -> None:
    record_review(engine, partition_key="hero-a", sha256=OLD, decision="rejected")
    record_review(engine, partition_key="hero-a", sha256=OLD, decision="rejected")  # a double click
    assert takes(engine)["hero-a"].rejections == 1
    record_review(engine, partition_key="hero-a", sha256=NEW, decision="rejected", prompt_addition="no hands")
    assert takes(engine)["hero-a"].rejections == 2
    record_review(engine, partition_key="hero-a", sha256=NEW, decision="approved")  # changed their mind
    assert takes(engine)["hero-a"].as_tuple() == (1, ())
    assert [r.decision for r in all_reviews(engine, partition_key="hero-a")] == ["rejected"] * 3 + ["approved"]

    catalog = Catalog(source="t", images=(ImageSpec.model_validate({"id": "hero-a", "category": "h", "prompt": "p"}),
                                          ImageSpec.model_validate({"id": "icon-b", "category": "i", "prompt": "p"})))
    applied = catalog_with_takes(catalog, engine)
    assert applied.get("hero-a").take == 1 and applied.get("icon-b") is catalog.get("icon-b")


@pytest.mark.parametrize(("fields", "field"), [
    ({"partition_key": "../etc/passwd"}, "partition_key"),
    ({"partition_key": "A" * 500}, "partition_key"),
    ({"sha256": "not-a-sha"}, "sha256"),
    ({"sha256": OLD.upper()}, "sha256"),
    ({"decision": "maybe"}, "decision"),
    ({"note": "x" * (MAX_NOTE_CHARS + 1)}, "note"),
    ({"note": "ok\x00hidden"}, "note"),
    ({"prompt_addition": "y" * 301}, "prompt_addition"),
    ({"prompt_addition": "looks fine", "decision": "approved"}, "prompt_addition"),
])
def test_hostile_verdicts_are_refused_naming_the_field(engine: Engine, fields: dict, field: str) -> None:
    values = {"partition_key": "hero-a", "sha256": OLD, "decision": "rejected", **fields}
    with pytest.raises(ReviewError) as caught:
        record_review(engine, **values)
    assert caught.value.field == field
    assert len(str(caught.value)) < 200  # never echoes the input
    assert all_reviews(engine) == []
