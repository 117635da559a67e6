"""The console channel: in-process with a fake NLU, and the real `prokus chat` command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actions.types import Button
from bot.console import run, to_turn

PROKUS = Path(sys.executable).with_name("prokus")


def test_numbers_pick_buttons_and_contact_lines_share_a_contact():
    offered = [Button("Apa itu Prokus?", "/faq/what_is_prokus"), Button("Bantuan", "/help")]
    assert to_turn("2\n", "9", offered).payload == "/help"
    assert to_turn("3\n", "9", offered).text == "3"  # no third button: plain text
    turn = to_turn("/contact +6281234567890\n", "9", offered)
    assert turn.contact.phone == "+6281234567890" and turn.shares_own_contact
    assert to_turn("halo\n", "9", offered).text == "halo"


def test_piped_lines_get_replies_in_order(assistant, texts):
    out = io.StringIO()
    run(assistant, "11", stdin=io.StringIO("halo\n3\n\n"), out=out)
    text = out.getvalue()
    assert text.index("> halo") < text.index(texts("greet")) < text.index("> 3")
    assert text.index("> 3") < text.index(texts("eligibility_consent").splitlines()[0])
    assert texts("empty_message") in text
    assert "  [1] Apa itu Prokus?" in text


@pytest.mark.nlu
def test_prokus_chat_command_with_piped_input(nlu_server_url, tmp_path, texts):
    env = dict(os.environ, NLU_URL=nlu_server_url, DATABASE_URL=f"sqlite:///{tmp_path}/c.db")
    subprocess.run([str(PROKUS), "db", "upgrade"], env=env, check=True, capture_output=True)

    def chat(lines: str) -> str:
        done = subprocess.run(
            [str(PROKUS), "chat", "--user", "42"], input=lines, env=env,
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = chat("halo\nmenu\n")
    assert texts("greet") in first and texts("menu") in first
    # A second run continues the stored conversation: a button label from the
    # last run is still understood.
    second = chat("Siapa yang bisa ikut?\n")  # a menu label shown in the first run
    assert texts("faq/requirements").splitlines()[0] in second


@pytest.mark.parametrize("line", ["²", "①", "٣", "9" * 5000, "1" * 4301, "０", "-1", "1_0",
                                  "4 ", "99999999999999999999999"])
def test_odd_numbers_never_crash_the_button_reader(line):
    offered = [Button("Satu", "/one"), Button("Dua", "/two"), Button("Tiga", "/three")]
    turn = to_turn(line + "\n", "9", offered)
    assert turn.payload in (None, "/three") and (turn.payload or turn.text)
    assert to_turn("٣\n", "9", offered).payload == "/three"  # Arabic-Indic three
    assert to_turn("²\n", "9", offered).text == "²"  # a superscript is not a number


def test_risky_lines_piped_into_the_chat_get_replies_not_tracebacks(assistant, texts):
    lines = ["halo", "²", "①", "9" * 4400, "٢", "/cek", "1", "3201051203900001²",
             "٣٢٠١٠٥١٢٠٣٩٠٠٠٠١", "x" * 5000, "\x00", "\u202e", "{0} %s {name}"]
    out = io.StringIO()
    run(assistant, "12", stdin=io.StringIO("\n".join(lines) + "\n"), out=out)
    text = out.getvalue()
    assert text.count("> ") >= len(lines) and texts("internal_error") not in text
    assert texts("nik_not_digits") in text
