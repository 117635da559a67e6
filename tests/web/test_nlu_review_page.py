"""/nlu/review over HTTP: coordinators and supervisors only; the queue shows masked,
escaped texts with the model's guesses; labelling and discarding need the CSRF token, take
only the domain's labels, are audited and compare-and-set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db import nlu_review
from db.engine import make_sessionmaker
from db.models import NluMiss
from nlu.client import Parse

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


def add_miss(console, text: str, at: datetime = NOW) -> int:
    parse = Parse("nlu_fallback", 0.3, ranking=(("nlu_fallback", 0.3), ("faq", 0.25),
                                                ("greet", 0.2)),
                  response_selector={"faq": {"response": {"intent_response_key": "faq/cost"}}})
    with make_sessionmaker(console.engine).begin() as session:
        nlu_review.record_miss(session, text, parse, "fallback", at)
    with make_sessionmaker(console.engine)() as session:
        return session.scalar(select(NluMiss.id).order_by(NluMiss.id.desc()).limit(1))


def miss(console, miss_id: int) -> NluMiss:
    with make_sessionmaker(console.engine)() as session:
        return session.get(NluMiss, miss_id)


@pytest.mark.parametrize("role,allowed", [("verifier", False), ("coordinator", True),
                                          ("supervisor", True)])
def test_roles(console, role, allowed):
    miss_id = add_miss(console, "halo?")
    console.signed_in("ani", role)
    page = console.client.get("/nlu/review")
    home = console.client.get("/")
    if allowed:
        assert page.status_code == 200 and 'href="/nlu/review"' in home.text
    else:
        assert page.status_code == 403 and 'href="/nlu/review"' not in home.text
        token = console.csrf("/")
        posted = console.post(f"/nlu/review/{miss_id}", {"action": "discard"}, token=token)
        assert posted.status_code == 403 and miss(console, miss_id).status == "new"


def test_without_a_session_it_is_the_login(console):
    assert console.client.get("/nlu/review").headers["location"].startswith("/login")


def test_the_queue_shows_masked_escaped_text_and_the_models_guesses(console):
    add_miss(console, "<script>alert(1)</script> nik 3201 0512 0390 0001 hp 0812-3456-7890")
    console.signed_in("ani", "coordinator")
    page = console.client.get("/nlu/review")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)" in page.text
    assert "3201********0001" in page.text and "+62812*****890" in page.text
    assert "0512 0390" not in page.text and "3456-7890" not in page.text
    assert "Apakah berbayar? 25%" in page.text          # faq/cost, by its button label
    assert 'value="faq/what_is_nik"' in page.text and 'value="out_of_scope"' in page.text
    assert 'value="faq"' not in page.text and 'value="nlu_fallback"' not in page.text
    assert "1 belum ditinjau" in page.text


def test_newest_or_oldest_first_and_pages(console):
    for day in range(25):
        add_miss(console, f"pesan hari {day}", NOW + timedelta(days=day))
    console.signed_in("ani", "supervisor")
    first = console.client.get("/nlu/review").text
    assert first.index("pesan hari 24") < first.index("pesan hari 23")
    assert "pesan hari 4<" not in first and 'rel="next"' in first
    oldest = console.client.get("/nlu/review?order=oldest").text
    assert oldest.index("pesan hari 0<") < oldest.index("pesan hari 1<")
    last = console.client.get("/nlu/review?order=newest&page=2").text
    assert "pesan hari 0<" in last and 'rel="prev"' in last
    assert console.client.get("/nlu/review?page=x&order=zzz").status_code == 200


def test_label_and_discard_are_audited(console):
    labelled, twin, discarded = (add_miss(console, text) for text in
                                 ("brp ongkos daftar", "brp ongkos daftar", "asdfgh"))
    console.signed_in("ani", "coordinator")
    done = console.post(f"/nlu/review/{labelled}", {"action": "label", "label": "faq/cost",
                                                    "order": "oldest", "page": "1"},
                        page="/nlu/review")
    assert done.status_code == 303 and done.headers["location"] == "/nlu/review?order=oldest&page=1"
    row = miss(console, labelled)
    assert (row.status, row.label, row.reviewed_by) == ("labelled", "faq/cost", "operator:ani")
    assert miss(console, twin).label == "faq/cost"
    follow = console.client.get(done.headers["location"])
    assert "Pesan ditandai sebagai faq/cost (dan 1 pesan yang sama persis)" in follow.text
    gone = console.post(f"/nlu/review/{discarded}", {"action": "discard"}, page="/nlu/review")
    assert gone.status_code == 303 and miss(console, discarded).status == "discarded"
    entries = console.audit("nlu_label", "nlu_discard")
    assert [(e.action, e.outcome, e.subject, e.actor) for e in entries] == [
        ("nlu_label", "ok", f"nlu_miss:{labelled}", "operator:ani"),
        ("nlu_discard", "ok", f"nlu_miss:{discarded}", "operator:ani")]
    assert entries[0].detail["label"] == "faq/cost" and entries[0].detail["same_text"] == 1
    assert "Tidak ada pesan yang menunggu ditinjau" in console.client.get("/nlu/review").text


def test_a_message_decided_by_someone_else_meanwhile(console):
    miss_id = add_miss(console, "gmn ini")
    console.signed_in("ani", "coordinator")
    token = console.csrf("/nlu/review")
    with make_sessionmaker(console.engine).begin() as session:
        nlu_review.review(session, miss_id, "help", "operator:budi", NOW)
    late = console.post(f"/nlu/review/{miss_id}", {"action": "label", "label": "greet"},
                        token=token)
    assert late.status_code == 303
    assert miss(console, miss_id).label == "help"
    assert "sudah ditinjau operator lain" in console.client.get("/nlu/review").text
    (entry,) = console.audit("nlu_label")
    assert entry.outcome == "already_reviewed"


def test_only_the_domains_labels_and_known_actions(console):
    miss_id = add_miss(console, "xyz")
    console.signed_in("ani", "supervisor")
    token = console.csrf("/nlu/review")
    for label in ("", "faq", "nlu_fallback", "faq/no_such_answer", "bogus"):
        response = console.post(f"/nlu/review/{miss_id}", {"action": "label", "label": label},
                                token=token)
        assert response.status_code == 303
    assert miss(console, miss_id).status == "new"
    assert "Pilih intent atau jawaban FAQ" in console.client.get("/nlu/review").text
    assert console.post(f"/nlu/review/{miss_id}", {"action": "delete"},
                        token=token).status_code == 400
    assert console.post("/nlu/review/abc", {"action": "discard"}, token=token).status_code \
        == 404
    assert console.audit("nlu_label", "nlu_discard") == []


def test_a_post_without_the_csrf_token_is_refused(console):
    miss_id = add_miss(console, "xyz")
    console.signed_in("ani", "supervisor")
    missing = console.client.post(f"/nlu/review/{miss_id}", data={"action": "discard"})
    wrong = console.post(f"/nlu/review/{miss_id}", {"action": "discard"}, token="nope")
    assert missing.status_code == 403 and wrong.status_code == 403
    assert miss(console, miss_id).status == "new"
