"""/audit over HTTP: supervisors only; filters who / what / when (WIB days) / subject;
paging; NIKs masked wherever they hide; an empty log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from db import repo
from db.engine import make_sessionmaker
from db.models import AuditLog

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
NIK = "3201051203900001"


def add(console, *entries) -> None:
    with make_sessionmaker(console.engine).begin() as session:
        for actor, action, outcome, subject, detail, at in entries:
            repo.audit(session, actor, action, outcome, subject=subject, detail=detail, at=at)


@pytest.mark.parametrize("role", ["verifier", "coordinator"])
def test_only_supervisors_read_the_audit_log(console, role):
    console.signed_in("ani", role)
    response = console.client.get("/audit")
    assert response.status_code == 403 and "Akses ditolak" in response.text


def test_an_empty_log_and_no_session(console):
    assert console.client.get("/audit").status_code == 303
    console.signed_in("sup")
    with make_sessionmaker(console.engine).begin() as session:  # the login's own row
        session.execute(delete(AuditLog))
    page = console.client.get("/audit")
    assert page.status_code == 200 and "Log audit masih kosong" in page.text
    filtered = console.client.get("/audit?action=kpm_import")
    assert "Tidak ada catatan yang cocok" in filtered.text


def test_filters_who_what_when_subject(console):
    console.signed_in("sup")
    add(console,
        ("operator:siti", "registration_status", "ok", "PRK-2026-000001", {"to": "diterima"},
         NOW - timedelta(days=2)),
        ("user:12", "not_understood", "nlu_fallback", None, {"text_length": 12}, NOW),
        ("user:13", "not_understood", "other", None, None,
         datetime(2026, 11, 26, 16, 59, tzinfo=UTC)),  # 26 Nov 23.59 WIB
        ("user:14", "not_understood", "other", None, None,
         datetime(2026, 11, 26, 17, 0, tzinfo=UTC)),  # 27 Nov 00.00 WIB
    )
    page = console.client.get("/audit?action=not_understood")
    assert page.status_code == 200 and page.text.count("<tr>") == 1 + 3
    assert "Pesan tidak dipahami" in page.text and 'selected>Pesan tidak dipahami' in page.text
    who = console.client.get("/audit?who=siti")  # a bare name is a console operator
    assert "PRK-2026-000001" in who.text and "user:12" not in who.text
    assert "user:12" in console.client.get("/audit?who=user:12").text
    day = console.client.get("/audit?action=not_understood&since=2026-11-27&until=2026-11-27")
    assert "user:14" in day.text and "user:13" not in day.text and "user:12" not in day.text
    subject = console.client.get("/audit?subject=prk-2026")
    assert "PRK-2026-000001" in subject.text and "user:12" not in subject.text
    swapped = console.client.get("/audit?since=2026-11-28&until=2026-11-27")
    assert "keduanya ditukar" in swapped.text and "user:14" in swapped.text
    bad = console.client.get("/audit?since=kemarin&page=x")
    assert bad.status_code == 200 and "tidak terbaca" in bad.text


def test_niks_are_masked_in_subject_detail_and_outcome(console):
    console.signed_in("sup")
    add(console, ("user:9", "nik_lookup", f"found {NIK}", NIK,
                  {"nik": NIK, "note": "3201 0512 0390 0001"}, NOW))
    page = console.client.get("/audit?action=nik_lookup")
    assert NIK not in page.text and "3201 0512" not in page.text
    assert "3201********0001" in page.text


def test_paging_keeps_the_filters(console):
    console.signed_in("sup")
    add(console, *[("user:5", "not_understood", "other", f"turn-{i:03d}", None,
                    NOW - timedelta(minutes=i)) for i in range(120)])
    first = console.client.get("/audit?action=not_understood")
    assert "turn-000" in first.text and "turn-050" not in first.text
    assert "Halaman 1 dari 3" in first.text
    assert 'href="/audit?action=not_understood&amp;page=2"' in first.text
    third = console.client.get("/audit?action=not_understood&page=3")
    assert "turn-119" in third.text and "Halaman 3 dari 3" in third.text
    assert "Lebih lama" not in third.text and "Lebih baru" in third.text
    beyond = console.client.get("/audit?action=not_understood&page=99")
    assert "Halaman 3 dari 3" in beyond.text
