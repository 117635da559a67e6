"""The NLU training data, test sets, domain and answers agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nlu.evaluation import load_examples, normalise

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "nlu" / "data"
TESTS = ROOT / "nlu" / "tests"

DESIGN_INTENTS = [
    "greet", "goodbye", "thanks", "affirm", "deny", "help", "check_eligibility",
    "register_prokus", "registration_status", "cancel", "mentoring_schedule",
    "mentor_contact", "human_handoff", "report_problem", "out_of_scope",
]
FAQS = ["what_is_prokus", "requirements", "benefits", "business_sectors", "why_under_40",
        "pkh_graduation", "cooperative", "bansos_schedule", "cost", "data_privacy",
        "mentoring_what", "fraud", "capital_disbursement", "process_duration", "reapply",
        "register_offline", "pkh_vs_prokus_mentor", "what_is_nik"]
SEVEN_FIELDS = {"industri_rumah_tangga", "jasa", "kuliner", "kerajinan_tangan",
                "industri_kreatif", "budi_daya_pertanian", "agrowisata"}


@pytest.fixture(scope="module")
def training():
    return load_examples(DATA)


def counts(examples):
    result: dict[str, int] = {}
    for _, intent in examples:
        result[intent] = result.get(intent, 0) + 1
    return result


@pytest.mark.parametrize("intent", DESIGN_INTENTS + [f"faq/{f}" for f in FAQS])
def test_every_design_intent_has_at_least_25_examples(training, intent):
    assert counts(training).get(intent, 0) >= 25


def test_out_of_scope_has_at_least_60_examples_with_near_misses(training):
    oos = [text for text, intent in training if intent == "out_of_scope"]
    assert len(oos) >= 60
    for near_miss in ("cara daftar sim online", "jadwal kereta", "harga cabai naik",
                      "pinjol cepat cair"):
        assert any(near_miss in text for text in oos), near_miss


def test_training_examples_are_unique(training):
    seen: dict[str, str] = {}
    for text, intent in training:
        key = normalise(text)
        assert key not in seen or seen[key] == intent, f"{text!r}: {seen.get(key)} vs {intent}"
        seen[key] = intent


@pytest.mark.parametrize("name", sorted(p.name for p in TESTS.glob("*.yml")))
def test_no_test_line_appears_in_training(training, name):
    trained = {normalise(text) for text, _ in training}
    leaked = [text for text, _ in load_examples(TESTS / name) if normalise(text) in trained]
    assert leaked == []


def test_held_out_set_is_big_enough_and_covers_every_intent():
    examples = load_examples(TESTS / "test_set.yml")
    assert len(examples) >= 200
    assert set(counts(examples)) >= set(DESIGN_INTENTS) | {f"faq/{f}" for f in FAQS}


def test_domain_lists_every_intent_and_faq_response(training, texts):
    domain = yaml.safe_load((ROOT / "nlu" / "domain.yml").read_text())
    intents = {intent.split("/")[0] for _, intent in training}
    assert set(domain["intents"]) == intents
    for faq in FAQS:
        assert f"utter_faq/{faq}" in domain["responses"]
        assert f"faq/{faq}" in texts, "every FAQ has an answer in responses.yml"
        assert f"label/faq/{faq}" in texts


def test_answers_are_short_and_link_only_to_go_id(texts):
    for key in texts:
        text = texts.raw(key)
        assert len(text) <= 650, key
        for domain in re.findall(r"\b[\w.-]+\.(?:com|id|net|org|co)\b", text):
            assert domain.endswith(".go.id"), (key, domain)


def test_business_sector_synonyms_map_to_the_seven_fields():
    entities = yaml.safe_load((DATA / "entities.yml").read_text())["nlu"]
    synonyms = {b["synonym"] for b in entities if "synonym" in b}
    assert synonyms <= SEVEN_FIELDS | {"kuliner", "jasa", "agrowisata"}
    words = " ".join(b["examples"] for b in entities if "synonym" in b)
    for everyday in ("warung", "gorengan", "katering", "bengkel", "laundry", "jahit",
                     "anyaman", "batik", "ternak", "sayur", "kolam ikan", "homestay",
                     "sablon", "desain"):
        assert everyday in words, everyday


def test_nik_and_phone_regexes_match_what_they_should():
    entities = yaml.safe_load((DATA / "entities.yml").read_text())["nlu"]
    regex = {b["regex"]: b["examples"].split("- ", 1)[1].strip() for b in entities
             if "regex" in b}
    assert re.search(regex["nik"], "nik saya 3201051203900001 ya")
    assert not re.search(regex["nik"], "32010512039000011")
    for phone in ("081234567890", "+6281234567890", "0812 3456 7890"):
        assert re.search(regex["phone"], phone), phone


def test_slang_dictionary_has_string_keys_and_values():
    data = yaml.safe_load((ROOT / "nlu" / "components" / "slang_id.yml").read_text())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
    for slang in ("sy", "gmn", "dftr", "gk", "ga", "brp", "kpn", "udh", "tdk", "yg", "dpt",
                  "ndak", "mboten"):
        assert slang in data


def test_rasa_data_validate_passes(settings):
    """`rasa data validate` (what `make nlu-validate` runs) accepts config, domain and data."""
    import subprocess

    from nlu.model import rasa_env

    rasa = settings.rasa_executable
    if not rasa.exists():
        pytest.skip("the Rasa environment is not installed (run `make setup`)")
    done = subprocess.run(
        [str(rasa), "data", "validate", "--config", "config.yml", "--domain",
         "nlu/domain.yml", "--data", "nlu/data", "--fail-on-warnings"],
        cwd=ROOT, env=rasa_env(ROOT), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
