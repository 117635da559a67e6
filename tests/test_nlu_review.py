"""Not-understood messages (issue 14 item 4): stored masked with the model's ranking,
reviewed with compare-and-set, purged after 90 days, exported as deduplicated NLU data with
a stable held-out share, reported on by `prokus nlu eval`, and learnt by a retrained model."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from bot import background
from bot.cli import main
from bot.settings import Settings
from db import nlu_review
from db.engine import make_sessionmaker
from db.models import NluMiss
from nlu.client import Parse
from nlu.evaluation import load_examples
from nlu.model import fingerprint
from nlu.reviewed import TEST_FILE, TRAINING_FILE, export, goes_to_test, label_choices

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
FAQ_SELECTOR = {"faq": {"response": {"intent_response_key": "faq/cost"}}}


def fallback_parse() -> Parse:
    return Parse("nlu_fallback", 0.3,
                 ranking=(("nlu_fallback", 0.3), ("faq", 0.22), ("greet", 0.2),
                          ("check_eligibility", 0.1)),
                 response_selector=FAQ_SELECTOR)


def stored(engine) -> list[NluMiss]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(NluMiss).order_by(NluMiss.id)))


def record(engine, text: str, parse: Parse | None = None, reason: str = "fallback",
           now: datetime = NOW) -> None:
    with make_sessionmaker(engine).begin() as session:
        nlu_review.record_miss(session, text, parse or fallback_parse(), reason, now)


# ---------------------------------------------------------------------- recording
@pytest.mark.parametrize("typed", [
    "3201051203900001", "3201 0512 0390 0001", "3201.0512.0390.0001", "3201-0512-0390-0001",
])
def test_a_nik_is_masked_before_it_is_stored(engine, typed):
    record(engine, f"nik saya {typed} kok ditolak")
    (row,) = stored(engine)
    assert row.text == "nik saya 3201********0001 kok ditolak"


@pytest.mark.parametrize("typed", [
    "081234567890", "0812 3456 7890", "0812-3456-7890", "+6281234567890",
    "+62 812 3456 7890", "+62 812-3456-7890", "62 812 3456 7890",
])
def test_a_phone_number_is_masked_before_it_is_stored(engine, typed):
    record(engine, f"hubungi saya di {typed} ya", reason="low_confidence")
    (row,) = stored(engine)
    assert row.text == "hubungi saya di +62812*****890 ya"
    assert row.reason == "low_confidence" and row.status == "new"


def test_other_long_numbers_are_starred_but_dates_and_amounts_stay(sqlite_engine):
    record(sqlite_engine, "nik 320105120390001 lahir 12-03-1990 modal Rp 1.500.000.000")
    (row,) = stored(sqlite_engine)
    assert row.text == "nik *************** lahir 12-03-1990 modal Rp 1.500.000.000"


def test_the_top_of_the_ranking_is_kept_with_the_faq_key(sqlite_engine):
    record(sqlite_engine, "brp duit nya")
    (row,) = stored(sqlite_engine)
    assert (row.intent, row.confidence) == ("faq/cost", 0.22)
    assert row.ranking == [["faq/cost", 0.22], ["greet", 0.2], ["check_eligibility", 0.1]]


def test_nothing_is_stored_when_the_nlu_was_down_or_the_text_is_empty(sqlite_engine):
    with make_sessionmaker(sqlite_engine).begin() as session:
        nlu_review.record_miss(session, "halo", None, "fallback", NOW)
        nlu_review.record_miss(session, "   ", fallback_parse(), "fallback", NOW)
        with pytest.raises(ValueError):
            nlu_review.record_miss(session, "halo", fallback_parse(), "other", NOW)
    assert stored(sqlite_engine) == []


def test_a_long_message_is_cut_to_the_column(sqlite_engine):
    record(sqlite_engine, "kata " * 2000)
    (row,) = stored(sqlite_engine)
    assert len(row.text) == nlu_review.MAX_TEXT


# ---------------------------------------------------------------------- review, purge
def test_review_is_compare_and_set_and_covers_the_same_text(engine):
    for text in ("gmn cara ikut", "gmn cara ikut", "lain lagi"):
        record(engine, text)
    first, twin, other = (row.id for row in stored(engine))
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        done = nlu_review.review(session, first, "register_prokus", "operator:ani", NOW)
    assert (done.outcome, done.same_text) == ("labelled", 1)
    with sessions.begin() as session:
        late = nlu_review.review(session, twin, "check_eligibility", "operator:budi", NOW)
        assert late.outcome == "gone"
        assert nlu_review.review(session, other, None, "operator:budi", NOW).outcome \
            == "discarded"
        assert nlu_review.review(session, 999, None, "operator:budi", NOW).outcome == "gone"
    rows = {row.id: row for row in stored(engine)}
    assert rows[twin].label == "register_prokus" and rows[twin].reviewed_by == "operator:ani"
    assert rows[other].status == "discarded" and rows[other].label is None
    with sessions() as session:
        assert nlu_review.counts(session) == {"new": 0, "labelled": 2, "discarded": 1}
        assert nlu_review.labelled_examples(session) == [("gmn cara ikut", "register_prokus")] * 2


def test_pending_pages_newest_or_oldest_first(sqlite_engine):
    for day in range(5):
        record(sqlite_engine, f"pesan {day}", now=NOW + timedelta(days=day))
    with make_sessionmaker(sqlite_engine)() as session:
        newest = nlu_review.pending(session, 1, 2)
        assert [r.text for r in newest.rows] == ["pesan 4", "pesan 3"]
        assert (newest.total, newest.pages, newest.has_next) == (5, 3, True)
        oldest = nlu_review.pending(session, 3, 2, oldest_first=True)
        assert [r.text for r in oldest.rows] == ["pesan 4"] and oldest.has_previous
        assert nlu_review.pending(session, 99, 2).page == 3


def test_purge_deletes_unreviewed_messages_after_90_days(engine):
    record(engine, "lama sekali", now=NOW - timedelta(days=91))
    record(engine, "lama berlabel", now=NOW - timedelta(days=200))
    record(engine, "lama dibuang", now=NOW - timedelta(days=200))
    record(engine, "masih baru", now=NOW - timedelta(days=89))
    sessions = make_sessionmaker(engine)
    ids = {row.text: row.id for row in stored(engine)}
    with sessions.begin() as session:
        nlu_review.review(session, ids["lama berlabel"], "greet", "operator:ani",
                          NOW - timedelta(days=150))
        nlu_review.review(session, ids["lama dibuang"], None, "operator:ani",
                          NOW - timedelta(days=150))
    with sessions.begin() as session:
        assert nlu_review.purge(session, NOW) == 2
    assert [row.text for row in stored(engine)] == ["lama berlabel", "masih baru"]
    with sessions.begin() as session:
        assert nlu_review.purge(session, NOW) == 0


def test_the_daily_background_job_purges(sqlite_engine):
    record(sqlite_engine, "kuno", now=datetime.now(UTC) - timedelta(days=120))
    record(sqlite_engine, "baru", now=datetime.now(UTC))
    assistant = SimpleNamespace(sessions=make_sessionmaker(sqlite_engine))

    async def one_round() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(background.nlu_retention(assistant, stop, every=3600))
        for _ in range(200):
            if len(stored(sqlite_engine)) == 1:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(one_round())
    assert [row.text for row in stored(sqlite_engine)] == ["baru"]


# ---------------------------------------------------------------------- labels, export
def test_label_choices_are_the_domain_intents_and_faq_answers():
    choices = {c.value: c for c in label_choices(ROOT)}
    assert {"greet", "check_eligibility", "out_of_scope", "faq/cost", "faq/what_is_nik"} \
        <= set(choices)
    assert "faq" not in choices and "nlu_fallback" not in choices
    assert choices["faq/cost"].title == "Apakah berbayar?" and choices["faq/cost"].group == "faq"
    assert choices["out_of_scope"].group == "intent"


@pytest.fixture
def project(tmp_path) -> Path:
    """A project root with the real domain and answers, one data file and one test set."""
    (tmp_path / "nlu" / "data").mkdir(parents=True)
    (tmp_path / "nlu" / "tests").mkdir()
    (tmp_path / "actions").mkdir()
    shutil.copy(ROOT / "nlu" / "domain.yml", tmp_path / "nlu" / "domain.yml")
    shutil.copy(ROOT / "actions" / "responses.yml", tmp_path / "actions" / "responses.yml")
    (tmp_path / "nlu" / "data" / "base.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - halo kak\n')
    (tmp_path / "nlu" / "tests" / "test_set.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: thanks\n  examples: |\n    - makasih banyak ya\n')
    return tmp_path


def written(root: Path) -> dict[str, list[tuple[str, str]]]:
    return {name: load_examples(root / path) if (root / path).exists() else []
            for name, path in (("training", TRAINING_FILE), ("test", TEST_FILE))}


def test_export_dedups_and_never_writes_a_test_or_training_message(project):
    labelled = [
        ("Halo, Kak!", "greet"),                       # already in nlu/data (normalised)
        ("makasih BANYAK ya", "thanks"),               # in an nlu/tests set
        ("brp biaya nya", "faq/cost"),
        ("BRP biaya-nya?", "faq/cost"),                # the same words again
        ("mau daftar [prokus](x)", "register_prokus"),  # annotation syntax neutralised
        ("apa aja", "faq/no_such_answer"),             # not a label of the domain
        ("*** ***", "out_of_scope"),                   # nothing left
    ]
    result = export(project, labelled, test_share=0)
    assert (result.new, result.already_in_data, result.in_test_sets, result.duplicates,
            result.unknown_label, result.empty) == (2, 1, 1, 1, 1, 1)
    files = written(project)
    assert files["test"] == [] and not (project / TEST_FILE).exists()
    assert sorted(files["training"]) == [("brp biaya nya", "faq/cost"),
                                         ("mau daftar (prokus)(x)", "register_prokus")]
    data = yaml.safe_load((project / TRAINING_FILE).read_text())
    assert data["version"] == "3.1"
    assert {block["intent"] for block in data["nlu"]} == {"faq/cost", "register_prokus"}


WORDS = ["satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan",
         "sepuluh", "sebelas", "duabelas", "tigabelas", "empatbelas", "limabelas"]


def test_the_split_is_stable_and_a_message_lands_in_one_file(project):
    labelled = [(f"pertanyaan nomor {word} tentang modal", "faq/capital_disbursement")
                for word in WORDS]
    first = export(project, labelled[:10], test_share=0.3, seed=7)
    before = written(project)
    assert first.training + first.test == 10 and first.test >= 1 and first.training >= 1
    again = export(project, labelled[:10], test_share=0.3, seed=7)
    assert written(project) == before and again.new == 0 and again.kept_from_files == 10
    export(project, labelled, test_share=0.3, seed=7)        # five more messages
    after = written(project)
    assert set(before["training"]) <= set(after["training"])
    assert set(before["test"]) <= set(after["test"])
    assert not {t for t, _ in after["training"]} & {t for t, _ in after["test"]}
    for text, _ in after["test"]:
        assert goes_to_test(text, 0.3, 7)
    # a fresh database (nothing labelled) keeps what the files hold
    export(project, [], test_share=0.3, seed=7)
    assert written(project) == after


def test_a_hand_correction_in_the_file_wins(project):
    export(project, [("kapan cair modalnya", "faq/capital_disbursement")], test_share=0)
    path = project / TRAINING_FILE
    path.write_text(path.read_text().replace("faq/capital_disbursement", "faq/process_duration"))
    export(project, [("kapan cair modalnya", "faq/capital_disbursement")], test_share=0)
    assert written(project)["training"] == [("kapan cair modalnya", "faq/process_duration")]


def test_the_model_fingerprint_covers_the_exported_file(project):
    before = fingerprint(project)
    export(project, [("kapan cair modalnya", "faq/capital_disbursement")], test_share=0)
    assert fingerprint(project) != before


def test_the_repository_files_if_any_keep_the_rules():
    """nlu/data/reviewed.yml and nlu/tests/reviewed_set.yml, once exported, share no line
    with each other or with any other data or test file."""
    files = written(ROOT)
    training = {t.lower() for t, _ in files["training"]}
    test = {t.lower() for t, _ in files["test"]}
    assert not training & test


# ---------------------------------------------------------------------- the CLI
def settings_for(engine, root: Path) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False),
                    project_root=root)


def test_cli_export_writes_both_files_and_prints_counts(sqlite_engine, project):
    for text in ("kpn modal cair", "modal kapan turun", "bisa daftar lewat kantor dinsos"):
        record(sqlite_engine, text)
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        rows = list(session.scalars(select(NluMiss).order_by(NluMiss.id)))
        for row, label in zip(rows, ("faq/capital_disbursement", "faq/capital_disbursement",
                                     "faq/register_offline"), strict=True):
            nlu_review.review(session, row.id, label, "operator:ani", NOW)
    done = CliRunner().invoke(main, ["nlu", "export-reviewed", "--test-share", "0.5",
                                     "--seed", "3"], obj=settings_for(sqlite_engine, project))
    assert done.exit_code == 0, done.output
    files = written(project)
    assert len(files["training"]) + len(files["test"]) == 3
    assert f"{len(files['training']):5d}  {TRAINING_FILE}" in done.output
    assert "faq/capital_disbursement" in done.output and "3 new to the files" in done.output
    bad = CliRunner().invoke(main, ["nlu", "export-reviewed", "--test-share", "1"],
                             obj=settings_for(sqlite_engine, project))
    assert bad.exit_code == 2


def test_cli_purge_unreviewed(sqlite_engine, project):
    record(sqlite_engine, "kuno", now=datetime.now(UTC) - timedelta(days=40))
    done = CliRunner().invoke(main, ["nlu", "purge-unreviewed", "--days", "30"],
                              obj=settings_for(sqlite_engine, project))
    assert done.exit_code == 0 and "1 messages deleted" in done.output
    assert stored(sqlite_engine) == []


class _FakeRasa(BaseHTTPRequestHandler):
    """/model/parse: 'greet' for anything with "halo", else out_of_scope."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        intent = "greet" if "halo" in body["text"] else "out_of_scope"
        data = json.dumps({"text": body["text"],
                           "intent": {"name": intent, "confidence": 0.9}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_nlu_eval_reports_on_the_reviewed_set_too(sqlite_engine, project, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRasa)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = dataclasses.replace(settings_for(sqlite_engine, project),
                                       nlu_url=f"http://127.0.0.1:{server.server_port}")
        out = tmp_path / "results"
        plain = CliRunner().invoke(main, ["nlu", "eval", "--out", str(out)], obj=settings)
        assert plain.exit_code == 0, plain.output
        assert "reviewed set" not in plain.output and not (out / "nlu-eval-reviewed.json").exists()
        export(project, [("halo min", "greet"), ("jual pulsa murah", "out_of_scope"),
                         ("gimana cara daftar", "register_prokus")], test_share=0.999)
        both = CliRunner().invoke(main, ["nlu", "eval", "--out", str(out)], obj=settings)
        assert both.exit_code == 0, both.output
        assert f"reviewed set ({TEST_FILE})" in both.output
        report = json.loads((out / "nlu-eval-reviewed.json").read_text())
        assert report["n"] == 3 and report["intent_accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    finally:
        server.shutdown()


# ---------------------------------------------------------------------- review -> retrain
TINY_CONFIG = """recipe: default.v1
assistant_id: tiny-review-test
language: id
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 5
    number_of_transformer_layers: 0
    entity_recognition: false
    random_seed: 42
  - name: ResponseSelector
    retrieval_intent: faq
    epochs: 5
    random_seed: 42
policies: []
"""
TINY_DOMAIN = """version: "3.1"
intents:
  - greet
  - check_eligibility
  - out_of_scope
  - faq
responses:
  utter_faq/cost:
    - text: "cost"
  utter_faq/what_is_prokus:
    - text: "what"
"""
TINY_DATA = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - halo
    - hai kak
    - selamat pagi
    - assalamualaikum
- intent: check_eligibility
  examples: |
    - apakah saya memenuhi syarat
    - cek kelayakan saya
    - saya layak ikut tidak
    - bisa ikut program ini tidak
- intent: faq/cost
  examples: |
    - berapa biayanya
    - bayar tidak
    - gratis kah
    - ada biaya pendaftaran
- intent: faq/what_is_prokus
  examples: |
    - apa itu prokus
    - prokus itu apa
    - jelaskan prokus
    - program prokus apa
"""
PARSE_SCRIPT = """
import asyncio, json, sys
from rasa.core.agent import Agent
agent = Agent.load(sys.argv[1])
texts = json.loads(sys.argv[2])
print(json.dumps([asyncio.run(agent.parse_message(t)) for t in texts], default=str))
"""
REVIEWED = [("jual hp bekas murah meriah", "out_of_scope"),
            ("jual motor bekas murah", "out_of_scope"),
            ("jual beli hp bekas", "out_of_scope"),
            ("kalo umurnya 38 thn msh boleh gabung", "check_eligibility")]


@pytest.mark.nlu
def test_review_export_retrain_on_a_tiny_model(sqlite_engine, tmp_path, settings):
    """Messages the bot missed are labelled, exported and trained on (a tiny 3-intent
    model, 5 epochs): the retrained model predicts a labelled message's intent."""
    from nlu.model import rasa_env, train

    python = settings.project_root / ".venv-nlu" / "bin" / "python"
    if not python.exists():
        pytest.skip("the Rasa environment is not installed (run `make setup`)")
    root = tmp_path / "tiny"
    (root / "nlu" / "data").mkdir(parents=True)
    (root / "nlu" / "tests").mkdir()
    (root / "config.yml").write_text(TINY_CONFIG)
    (root / "nlu" / "domain.yml").write_text(TINY_DOMAIN)
    (root / "nlu" / "data" / "base.yml").write_text(TINY_DATA)
    # the bot missed these (the tiny model has no out_of_scope example at all)
    for text, _ in REVIEWED:
        record(sqlite_engine, text, Parse("greet", 0.4, ranking=(("greet", 0.4),)),
               "low_confidence")
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        labels = dict(REVIEWED)
        for row in nlu_review.pending(session, 1, 50).rows:
            nlu_review.review(session, row.id, labels[row.text], "operator:ani", NOW)
    with sessions() as session:
        result = export(root, nlu_review.labelled_examples(session), test_share=0)
    assert result.training == len(REVIEWED)
    model = train(root, settings.rasa_executable, tmp_path / "models",
                  log_file=tmp_path / "train.log", echo=None)
    probes = [text for text, _ in REVIEWED] + ["halo"]
    done = subprocess.run([str(python), "-c", PARSE_SCRIPT, str(model), json.dumps(probes)],
                          capture_output=True, text=True, env=rasa_env(root), cwd=root,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parses = json.loads(done.stdout.strip().splitlines()[-1])
    predicted = {p["text"]: p["intent"]["name"] for p in parses}
    assert predicted["jual hp bekas murah meriah"] == "out_of_scope", predicted
    assert predicted["halo"] == "greet", predicted
