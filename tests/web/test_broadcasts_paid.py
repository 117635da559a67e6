"""The console composer's paid broadcast (issue 18): the checkbox and rate, the preview's
Stars estimate and duration, an explicit consent before queueing, the mode bound to the
confirmation, and a free broadcast unchanged."""

from __future__ import annotations

from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import OutboxMessage
from tests.web.test_broadcasts import audience, compose, confirm_from


def modes(engine):
    with make_sessionmaker(engine)() as session:
        return [tuple(r) for r in session.execute(
            select(OutboxMessage.text, OutboxMessage.paid, OutboxMessage.paid_rate)
            .where(OutboxMessage.kind == "broadcast").order_by(OutboxMessage.id))]


def test_a_paid_broadcast_shows_its_cost_and_needs_consent(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    assert 'name="paid"' in console.client.get("/broadcasts").text
    preview = compose(console, text="Cepat", paid="1", rate="500")
    assert preview.status_code == 200
    assert 'id="stars-estimate"' in preview.text and "0.2 Telegram Stars" in preview.text
    assert 'name="paid_consent"' in preview.text
    # without the consent box: refused, nothing queued
    refused = confirm_from(console, preview.text, "Cepat", paid="1", rate="500")
    assert refused.status_code == 400 and "Telegram Stars" in refused.text
    assert modes(sqlite_engine) == []
    # the mode is bound to the preview: a faster rate than previewed is refused
    changed = confirm_from(console, preview.text, "Cepat", paid="1", rate="1000",
                           paid_consent="1")
    assert changed.status_code == 400 and modes(sqlite_engine) == []
    sent = confirm_from(console, preview.text, "Cepat", paid="1", rate="500",
                        paid_consent="1")
    assert sent.status_code in (200, 303)
    assert modes(sqlite_engine) == [("Cepat", True, 500.0)]


def test_a_free_broadcast_is_unchanged_and_a_bad_rate_is_refused(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    preview = compose(console, text="Biasa")
    assert "Tanpa biaya" in preview.text and 'name="paid_consent"' not in preview.text
    confirm_from(console, preview.text, "Biasa", paid="", rate="")
    assert modes(sqlite_engine) == [("Biasa", False, None)]
    bad = compose(console, text="Cepat", paid="1", rate="5000")
    assert bad.status_code == 400 and "1.000 pesan" in bad.text
