"""Regression gate on the real model through the HTTP server, and the slang component."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from nlu.evaluation import format_summary, load_examples, run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.nlu

MIN_INTENT_ACCURACY = 0.90
MIN_OOS_RECALL = 0.85


@pytest.fixture(scope="module")
def held_out_report(nlu_server_url):
    with httpx.Client(base_url=nlu_server_url, timeout=30) as http:
        return run(load_examples(ROOT / "nlu" / "tests" / "test_set.yml"),
                   lambda text: http.post("/model/parse", json={"text": text}).json())


def test_held_out_intent_accuracy_gate(held_out_report):
    assert held_out_report.intent_accuracy >= MIN_INTENT_ACCURACY, format_summary(
        held_out_report)


def test_held_out_out_of_scope_recall_gate(held_out_report):
    assert held_out_report.oos_recall >= MIN_OOS_RECALL, format_summary(held_out_report)


def test_entities_point_at_what_the_user_typed(nlu_server_url):
    text = "sy mau dftr, nik 3201051203900001 hp 0812 3456 7890 umur 35 thn usaha gorengan"
    data = httpx.post(f"{nlu_server_url}/model/parse", json={"text": text}).json()
    found = {e["entity"]: e for e in data["entities"]}
    assert text[found["nik"]["start"]:found["nik"]["end"]] == "3201051203900001"
    assert text[found["phone"]["start"]:found["phone"]["end"]] == "0812 3456 7890"
    assert found["age"]["value"] == "35"
    assert found["business_sector"]["value"] == "kuliner", "synonym mapped to its field"


def test_slang_normaliser_changes_lemmas_not_text_or_offsets(settings):
    """Run the Rasa component in the Rasa environment on a real tokenised message."""
    script = """
import json
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message
from nlu.components.slang import SlangNormalizer
tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
message = Message(data={"text": "sy mau dftr gmn caranya, udh lulus pkh mboten?"})
tokenizer.process([message])
SlangNormalizer({"use_lexicon": True}).process([message])
print(json.dumps([[t.text, t.lemma, t.start, t.end] for t in message.get("text_tokens")]))
"""
    from nlu.model import rasa_env

    python = settings.project_root / ".venv-nlu" / "bin" / "python"
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                          env=rasa_env(settings.project_root), cwd=settings.project_root,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    tokens = json.loads(done.stdout.strip().splitlines()[-1])
    text = "sy mau dftr gmn caranya, udh lulus pkh mboten?"
    lemmas = {t[0]: t[1] for t in tokens}
    assert lemmas["sy"] == "saya" and lemmas["dftr"] == "daftar"
    assert lemmas["gmn"] == "bagaimana" and lemmas["udh"] == "sudah"
    assert lemmas["mboten"] == "tidak", "our list overrides the lexicon"
    for token_text, _, start, end in tokens:
        assert text[start:end] == token_text
