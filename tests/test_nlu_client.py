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


# ---------------------------------------------------------------------- several servers
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingNLU(ScriptedNLU):
    """A ScriptedNLU that also records the query string of each request."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(script)
        self.queries: list[str] = []
        handler = self.server.RequestHandlerClass
        outer = self
        original = handler.do_POST

        def do_post(request_handler):
            outer.queries.append(request_handler.path.partition("?")[2])
            original(request_handler)

        handler.do_POST = do_post


@pytest.fixture
def stubs():
    from tests.fakes.nlu_stub import NLUStub

    started = []

    def make():
        stub = NLUStub().start()
        started.append(stub)
        return stub

    yield make
    for stub in started:
        stub.stop()


def _down_url() -> str:
    from nlu.server import free_port

    return f"http://127.0.0.1:{free_port()}"


def test_nlu_url_list_is_split_and_checked():
    from nlu.client import split_urls

    assert split_urls(" http://a:5005/ , http://b:5005") == ["http://a:5005", "http://b:5005"]
    with pytest.raises(ValueError):
        split_urls(" , ")


def test_requests_go_round_robin_over_the_servers(stubs):
    first, second = stubs(), stubs()
    client = NLUClient(f"{first.url},{second.url}", retries=0)
    try:
        for _ in range(6):
            assert client.parse("halo").intent == "greet"
    finally:
        client.close()
    assert (first.parses, second.parses) == (3, 3)


def test_a_server_that_is_down_is_skipped_for_the_cool_down_then_tried_again(stubs):
    up = stubs()
    clock = _Clock()
    client = NLUClient([_down_url(), up.url], timeout=0.5, retries=1, cooldown=30.0,
                       clock=clock)
    tried_down = []
    original = client._pick

    def pick():
        server = original()
        tried_down.append(server.url != up.url)
        return server

    client._pick = pick
    try:
        for _ in range(5):  # the first parse fails over to the second server at once
            assert client.parse("halo").intent == "greet"
        assert tried_down.count(True) == 1, "the down server was asked once, then skipped"
        assert up.parses == 5
        clock.now += 31  # after the cool-down it is tried again (and skipped again)
        assert client.parse("halo").intent == "greet"
        assert tried_down.count(True) == 2
    finally:
        client.close()


def test_a_5xx_counts_as_down_and_a_retry_goes_to_the_other_server(scripted, stubs):
    broken, up = scripted(["error"]), stubs()
    client = NLUClient([broken.url, up.url], retries=1, clock=_Clock())
    try:
        for _ in range(4):
            assert client.parse("halo").intent == "greet"
    finally:
        client.close()
    assert broken.calls == 1 and up.parses == 4


def test_all_servers_down_is_unavailable_after_the_retries():
    client = NLUClient([_down_url(), _down_url()], timeout=0.5, retries=2, clock=_Clock())
    try:
        with pytest.raises(NLUUnavailable):
            client.parse("halo")
        assert not client.is_ready()
    finally:
        client.close()


def test_every_server_gets_the_token_and_one_up_is_ready(stubs):
    first, second = RecordingNLU(["ok"]), RecordingNLU(["ok"])
    client = NLUClient([first.url, second.url], token="rahasia", retries=0)
    try:
        client.parse("halo")
        client.parse("halo")
        assert first.queries == ["token=rahasia"] and second.queries == ["token=rahasia"]
    finally:
        client.close()
        first.close()
        second.close()
    up = stubs()
    mixed = NLUClient([_down_url(), up.url])
    try:
        assert mixed.is_ready() and mixed.ready_servers() == [False, True]
    finally:
        mixed.close()


def test_settings_accept_a_list_of_nlu_urls_and_check_each():
    from pathlib import Path

    from bot.settings import Settings, SettingsError

    none = Path("/nonexistent/.env")
    settings = Settings.from_env({"NLU_URL": "http://nlu-1:5005, https://nlu-2:5005"},
                                 env_file=none)
    assert settings.nlu_url == "http://nlu-1:5005, https://nlu-2:5005"
    for bad in ("http://nlu-1:5005,,http://nlu-2:5005", "http://nlu-1:5005,nlu-2:5005"):
        with pytest.raises(SettingsError) as error:
            Settings.from_env({"NLU_URL": bad}, env_file=none)
        assert error.value.problems[0].startswith("NLU_URL=")
