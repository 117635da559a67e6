"""A stub of the Rasa NLU HTTP API for load and crash tests: keyword rules instead of a model.

It answers `POST /model/parse` in Rasa's shape (intent, entities, intent_ranking and the
`faq` response selector) and `GET /status` (with a `model_file`), on 127.0.0.1 and a free
port, in a thread of the calling process. It can add a fixed delay to every parse, and it
can hang: every parse then blocks until `release()` (or `stop()`).

    stub = NLUStub().start()          # NLU_URL=stub.url for `prokus run`
    stub.hang(); ...; stub.release()
    stub.delay = 0.05

Run it on its own: `python -m tests.fakes.nlu_stub --port 5005`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_FILE = "models/nlu-stub.tar.gz"

# First matching rule wins: (regular expression on the lower-cased text, intent, faq key).
RULES: list[tuple[str, str, str | None]] = [
    (r"\b(batal|gak jadi|ga jadi|tidak jadi)\b", "cancel", None),
    (r"\b(syarat|syaratnya|persyaratan|siapa yang bisa)\b", "faq", "faq/requirements"),
    (r"\b(biaya|biayanya|bayar|gratis)\b", "faq", "faq/cost"),
    (r"\b(manfaat|dapat apa|bantuan modal)\b", "faq", "faq/benefits"),
    (r"\b(bidang usaha|usaha apa)\b", "faq", "faq/business_sectors"),
    (r"\b(koperasi)\b", "faq", "faq/cooperative"),
    (r"\bapa itu prokus\b|\bprokus itu apa\b|\bprokus apa\b", "faq", "faq/what_is_prokus"),
    (r"\b(status|sudah sampai mana)\b", "registration_status", None),
    (r"\b(daftar|dftr|mendaftar|registrasi)\b", "register_prokus", None),
    (r"\b(cek|bisa ikut|layak|memenuhi syarat)\b", "check_eligibility", None),
    (r"\b(jadwal|pertemuan)\b", "mentoring_schedule", None),
    (r"\b(pendamping|kontak)\b", "mentor_contact", None),
    (r"\b(petugas|manusia|operator)\b", "human_handoff", None),
    (r"\b(bingung|bantuan|tolong)\b", "help", None),
    (r"\b(makasih|terima kasih|trims|thanks)\b", "thanks", None),
    (r"\b(dadah|sampai jumpa|bye)\b", "goodbye", None),
    (r"\b(halo|hai|hallo|selamat pagi|selamat siang|assalamualaikum|pagi)\b", "greet", None),
    (r"^(ya|iya|betul|benar|boleh|ok|oke|setuju)\b", "affirm", None),
    (r"^(tidak|nggak|enggak|gak|jangan|bukan)\b", "deny", None),
    (r"\b(sim|ktp hilang|cuaca|bola|resep)\b", "out_of_scope", None),
]
ENTITY_PATTERNS = {"nik": r"\b\d{16}\b", "phone": r"(?:\+62|0)8\d{8,12}\b"}


def parse_text(text: str) -> dict[str, Any]:
    """A Rasa-shaped parse of `text` from the keyword rules."""
    lowered = text.casefold()
    intent, key, confidence = "nlu_fallback", None, 0.3
    for pattern, rule_intent, rule_key in RULES:
        if re.search(pattern, lowered):
            intent, key, confidence = rule_intent, rule_key, 0.95
            break
    entities = [{"entity": name, "value": m.group(0), "start": m.start(), "end": m.end(),
                 "extractor": "RegexEntityExtractor"}
                for name, pattern in ENTITY_PATTERNS.items()
                for m in re.finditer(pattern, text)]
    ranking = [{"name": intent, "confidence": confidence},
               {"name": "out_of_scope" if intent != "out_of_scope" else "greet",
                "confidence": round(1 - confidence, 3) / 2}]
    selector: dict[str, Any] = {"all_retrieval_intents": ["faq"]}
    if key:
        selector["faq"] = {"response": {"intent_response_key": key, "confidence": confidence,
                                        "responses": [{"text": key}]},
                           "ranking": [{"intent_response_key": key, "confidence": confidence}]}
    return {"text": text, "intent": {"name": intent, "confidence": confidence},
            "entities": entities, "intent_ranking": ranking, "response_selector": selector}


class NLUStub:
    """The stub server's state: counters, delay and the hang switch; thread-safe."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.parses = 0
        self._open = threading.Event()  # set: requests flow; clear: they hang
        self._open.set()
        self._server: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> NLUStub:
        """Serve on 127.0.0.1:`port` (0: a free one) in a daemon thread."""
        handler = type("Handler", (_Handler,), {"stub": self})
        self._server = _QuietServer(("127.0.0.1", port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self._open.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hang(self) -> None:
        """From now on every parse blocks until `release()`."""
        self._open.clear()

    def release(self) -> None:
        """Let hung and later parses through."""
        self._open.set()

    @property
    def hung(self) -> bool:
        return not self._open.is_set()

    def answer(self, text: str) -> dict[str, Any]:
        """Wait while hung, add the delay, then parse."""
        while not self._open.wait(0.5):
            if self._server is None:
                break
        if self.delay:
            time.sleep(self.delay)
        self.parses += 1
        return parse_text(text)


class _QuietServer(ThreadingHTTPServer):
    """Clients that gave up on a hung parse (timeout) are not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    stub: NLUStub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?")[0] in ("/status", "/status/"):
            self._send(200, {"model_file": MODEL_FILE, "model_id": "stub",
                             "num_active_training_jobs": 0})
        elif self.path == "/":
            self._send(200, {"message": "Hello from Rasa: 3.6.21 (stub)"})
        else:
            self._send(404, {"status": "failure", "reason": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0] != "/model/parse":
            self._send(404, {"status": "failure", "reason": "not found"})
            return
        try:
            text = str(json.loads(raw or b"{}")["text"])
        except (ValueError, KeyError, TypeError):
            self._send(400, {"status": "failure", "reason": "BadRequest"})
            return
        self._send(200, self.stub.answer(text))


def main() -> None:
    parser = argparse.ArgumentParser(description="Stub Rasa NLU server (keyword rules)")
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each parse")
    args = parser.parse_args()
    stub = NLUStub(delay=args.delay).start(args.port)
    print(stub.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
