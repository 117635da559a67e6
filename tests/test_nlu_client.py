"""The NLU HTTP client: timeout, one retry, and behaviour with the real Rasa server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actions.dialogue import Dialogue
from actions.types import Turn
from bot.app import Assistant
from db.engine import make_sessionmaker
from nlu.client import NLUClient, NLUUnavailable, Parse
from tests.fakes.tcp_proxy import TcpProxy

RASA_REPLY = {
    "text": "halo",
    "intent": {"name": "greet", "confidence": 0.97},
    "entities": [{"entity": "nik", "value": "3201051203900001", "start": 0, "end": 16}],
    "intent_ranking": [
        {"name": "greet", "confidence": 0.97},
        {"name": "thanks", "confidence": 0.02},
    ],
}


class ScriptedNLU:
    """A tiny HTTP server answering /model/parse with a script of behaviours."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.calls = 0
        self.release = threading.Event()  # a "slow" reply waits for this (set on close)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                step = outer.script[min(outer.calls, len(outer.script) - 1)]
                outer.calls += 1
                if step == "slow":
                    outer.release.wait(10)  # longer than any client timeout in these tests
                if step == "error":
                    self.send_response(500)
                    self.end_headers()
                    return
                body = json.dumps(RASA_REPLY).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(script):
        server = ScriptedNLU(script)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def test_parse_reads_intent_entities_and_ranking(scripted):
    server = scripted(["ok"])
    parse = NLUClient(server.url).parse("halo")
    assert parse.intent == "greet" and parse.confidence == pytest.approx(0.97)
    assert parse.entities[0].entity == "nik"
    assert parse.ranking[1] == ("thanks", pytest.approx(0.02))


def test_one_retry_after_an_error(scripted):
    server = scripted(["error", "ok"])
    assert NLUClient(server.url, retries=1).parse("halo").intent == "greet"
    assert server.calls == 2


def test_gives_up_after_the_retry(scripted):
    server = scripted(["error"])
    with pytest.raises(NLUUnavailable):
        NLUClient(server.url, retries=1).parse("halo")
    assert server.calls == 2


def test_timeout_then_retry(scripted):
    server = scripted(["slow", "ok"])
    started = time.monotonic()
    assert NLUClient(server.url, timeout=0.3, retries=1).parse("halo").intent == "greet"
    assert server.calls == 2  # the first call was abandoned at the timeout, then retried
    assert time.monotonic() - started < 5  # not the 10 s the slow reply would have taken


def test_connection_refused_is_unavailable():
    from nlu.server import free_port

    with pytest.raises(NLUUnavailable):
        NLUClient(f"http://127.0.0.1:{free_port()}", timeout=0.5).parse("halo")


def test_from_rasa_tolerates_missing_fields():
    assert Parse.from_rasa({}).intent == "nlu_fallback"


def test_from_rasa_reads_null_confidences_and_the_default_selector():
    """Rasa's default config names the selector "default"; confidences may be null."""
    reply = {"intent": {"name": "faq", "confidence": None},
             "intent_ranking": [{"name": "faq", "confidence": None}],
             "response_selector": {"default": {"response": {
                 "intent_response_key": "faq/cost"}}}}
    parse = Parse.from_rasa(reply)
    assert (parse.confidence, parse.ranking, parse.faq_key) == (0.0, (("faq", 0.0),), "faq/cost")


@pytest.mark.parametrize("reply", [[], "oops", {"intent": "greet"},
                                   {"entities": [{"value": "x"}]},
                                   {"intent_ranking": [{"name": "a", "confidence": "high"}]}])
def test_from_rasa_turns_a_malformed_reply_into_value_error(reply):
    """The client treats ValueError as "NLU unavailable"; nothing else may escape."""
    with pytest.raises(ValueError):
        Parse.from_rasa(reply)


@pytest.mark.parametrize("reply", [
    RASA_REPLY,
    {},
    {"intent": {"name": "faq", "confidence": 0.8},
     "response_selector": {"faq": {"response": {"intent_response_key": "faq/benefits"}}}},
    {"intent": {"name": "faq", "confidence": None},
     "response_selector": {"default": {"response": {"intent_response_key": "faq/cost"}}}},
])
def test_the_evaluation_reads_replies_exactly_as_the_bot(reply):
    from nlu.evaluation import Prediction

    parse = Parse.from_rasa(reply)
    assert Prediction.from_rasa(reply) == Prediction(parse.intent, parse.confidence,
                                                     parse.faq_key, parse.ranking)


def test_evaluation_module_needs_no_httpx():
    """scripts/nlu_compare.py imports nlu.evaluation in .venv-nlu, which has no httpx."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['httpx'] = None\n"
            "from nlu.evaluation import Prediction\n"
            "print(Prediction.from_rasa({'intent': {'name': 'greet', 'confidence': 1}}).intent)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "greet"


@pytest.mark.nlu
def test_real_model_understands_basic_intents(nlu_server_url):
    client = NLUClient(nlu_server_url)
    assert client.is_ready()
    assert client.parse("halo kak").intent == "greet"
    assert client.parse("makasih banyak ya").intent == "thanks"
    assert client.parse("dadah sampai jumpa").intent == "goodbye"


@pytest.mark.nlu
def test_nlu_down_then_back_through_the_real_server(nlu_server_url, sqlite_engine, texts):
    """The NLU server goes away mid-conversation and comes back on the same address."""
    upstream_port = int(nlu_server_url.rsplit(":", 1)[1])
    proxy = TcpProxy(upstream_port)
    proxy.start()
    client = NLUClient(proxy.url, timeout=3.0, retries=1)
    assistant = Assistant(Dialogue(client, texts), make_sessionmaker(sqlite_engine))
    turn = Turn("console", "3", text="halo kak")
    try:
        assert assistant.handle(turn)[0].text == texts("greet")
        proxy.stop()
        down = assistant.handle(turn)
        assert down[0].text == texts("nlu_down")
        assert down[0].buttons, "the apology comes with the main menu"
        proxy.start()  # same port again
        assert assistant.handle(turn)[0].text == texts("greet")
    finally:
        proxy.stop()
        client.close()
