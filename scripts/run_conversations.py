"""Run the scripted KPM conversations (tests/conversations/*.yml) against the real core.

Each conversation is driven through `bot.app.Assistant` + `actions.dialogue.Dialogue` with
the real NLU model (a local Rasa server started the way the CLI does, or `NLU_URL`) and a
fresh SQLite database (migrated with Alembic, demo KPM loaded) per conversation. Its goal is
then checked from the database and the replies, never from "no error":

- register:    one registration row for the KPM's NIK with the expected bidang_usaha and
               lama_usaha_bulan (and the confirmation text with its PRK number), and
               kontak_berbeda as the goal says (default false);
- eligibility: the result text (pass, or fail naming the expected criterion), or for
               `result: unconfirmed` the "could not confirm" text and no result at all;
- faq:         the expected FAQ answer in the replies to the marked (default: last) turn;
- refusal:     the out-of-scope / fallback text (or the named texts) and nothing stored;
- status:      the status answer (named texts) for the marked turn.

Prints the success rate per goal type and overall; writes results/<suite dir name>.json
(results/conversations.json for the default suite).
Usage: .venv/bin/python scripts/run_conversations.py [--suite DIR] [--only ID] [--verbose]
       [--check]
--suite DIR runs another folder of conversations (e.g. tests/conversations_fresh, the
held-out suite); --check only loads the suite and resolves every placeholder, goal and
button label, without the model or a database.

A step is a message (with {person.nik} / {person.name} / ... placeholders), a button press
`{press: Label}`, or a shared own Telegram contact (the "Bagikan nomor HP saya" button):
`{contact: budi}` shares a phone equal to that demo KPM's registry phone, `{contact:
"+6285700001111"}` that number.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from actions.responses import Responses  # noqa: E402
from actions.types import Contact, Turn  # noqa: E402
from bot.app import build_assistant, make_nlu_client  # noqa: E402
from bot.cli import nlu_url  # noqa: E402
from bot.settings import Settings  # noqa: E402
from db.demo import demo_rows, load_demo  # noqa: E402
from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Registration  # noqa: E402

SUITE = ROOT / "tests" / "conversations"
_TEXTS = Responses.load()
RESPONSES = {key: _TEXTS.raw(key) for key in _TEXTS}
PLACEHOLDER = re.compile(r"\{(\w+)\.(nik|name|nik_spaced|lower)\}")


def people() -> dict[str, dict[str, str]]:
    """{budi: {nik, name, ...}} from the demo rows of today (NIKs follow the year)."""
    out = {}
    for nik, name, _record in demo_rows():
        key = name.split()[1].lower()  # "Contoh Budi Santoso" -> budi
        out[key] = {"nik": nik, "name": name, "lower": name.lower(),
                    "nik_spaced": f"{nik[:4]} {nik[4:8]} {nik[8:12]} {nik[12:]}",
                    "phone": _record.no_hp or ""}
    return out


def contact_phone(value: str, who: dict[str, dict[str, str]]) -> str:
    """The number of a `{contact: ...}` step: a demo KPM's registry phone, or the number
    given (KeyError for a person without a phone)."""
    value = str(value).strip()
    if value.lower() in who:
        phone = who[value.lower()]["phone"]
        if not phone:
            raise KeyError(f"{value} has no registry phone")
        return phone
    if not re.fullmatch(r"\+?\d{9,15}", value):
        raise KeyError(f"{value!r} is neither a person nor a phone number")
    return value


def fill(text: str, who: dict[str, dict[str, str]]) -> str:
    return PLACEHOLDER.sub(lambda m: who[m.group(1)][m.group(2)], text)


def text_of(key_or_text: str) -> str:
    """A response key (its text up to the first placeholder/line) or a literal string."""
    if key_or_text in RESPONSES:
        head = RESPONSES[key_or_text].split("{", 1)[0].splitlines()[0]
        return head.strip()[:70]
    return key_or_text


def contains_any(replies: str, wanted: list[str]) -> bool:
    low = replies.lower()
    return any(text_of(w).lower() in low for w in wanted)


def load_suite(only: str | None, suite: Path = SUITE) -> list[dict]:
    convs = []
    for file in sorted(suite.glob("*.yml")):
        for conv in yaml.safe_load(file.read_text("utf-8")) or []:
            conv["file"] = file.name
            if only is None or conv["id"] == only:
                convs.append(conv)
    return convs


def make_template(tmp: Path) -> Path:
    path = tmp / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        load_demo(session)
    engine.dispose()
    return path


def drive(assistant, user: str, steps: list, who) -> list[dict]:
    """Send every step; return the transcript (one entry per turn)."""
    transcript, last = [], []
    for step in steps:
        if isinstance(step, dict) and "press" in step:
            label = step["press"].lower()
            buttons = [b for r in last for b in r.buttons]
            match = next((b for b in buttons if b.label.lower() == label), None) or next(
                (b for b in buttons if label in b.label.lower()), None)
            if match is None:
                transcript.append({"user": f"[press {step['press']}]", "bot": "",
                                   "error": f"no button {step['press']!r} in "
                                            f"{[b.label for b in buttons]}"})
                last = []
                continue
            turn, shown = Turn("telegram", user, payload=match.payload), f"[{match.label}]"
        elif isinstance(step, dict) and "contact" in step:
            phone = contact_phone(step["contact"], who)
            turn = Turn("telegram", user, contact=Contact(phone, user_id=user))
            shown = f"[contact {phone}]"
        else:
            shown = fill(str(step), who)
            turn = Turn("telegram", user, text=shown)
        last = assistant.handle(turn)
        transcript.append({"user": shown,
                           "bot": "\n".join(r.text for r in last),
                           "buttons": [b.label for r in last for b in r.buttons]})
    return transcript


def check(conv: dict, transcript: list[dict], session_factory, who) -> tuple[bool, str]:
    goal = conv["goal"]
    kind = goal["type"]
    at = goal.get("turn", -1)
    all_text = "\n".join(t["bot"] for t in transcript)
    turn_text = transcript[at]["bot"] if transcript else ""
    with session_factory() as session:
        regs = list(session.scalars(select(Registration)))
    if kind == "register":
        nik = who[goal["kpm"]]["nik"]
        mine = [r for r in regs if r.nik == nik]
        if len(mine) != 1:
            return False, f"{len(mine)} registrations for {goal['kpm']}"
        reg = mine[0]
        if reg.bidang_usaha != goal["sector"]:
            return False, f"bidang_usaha {reg.bidang_usaha!r}, expected {goal['sector']!r}"
        if reg.lama_usaha_bulan != goal["months"]:
            return False, f"lama_usaha_bulan {reg.lama_usaha_bulan}, expected {goal['months']}"
        if reg.number not in all_text:
            return False, "registration number not shown"
        flagged = bool(goal.get("kontak_berbeda", False))
        if reg.kontak_berbeda != flagged:
            return False, f"kontak_berbeda {reg.kontak_berbeda}, expected {flagged}"
        return True, (f"{reg.number} {reg.bidang_usaha} {reg.lama_usaha_bulan} bulan"
                      + (" kontak berbeda" if flagged else ""))
    if regs and kind != "status":
        return False, f"unexpected registration stored ({regs[0].number})"
    if kind == "eligibility":
        if goal["result"] == "unconfirmed":  # not confirmed by contact: no result at all
            ok = contains_any(all_text, ["eligibility_unconfirmed"]) and not contains_any(
                all_text, ["eligibility_result_title", "eligibility_pass", "eligibility_fail"])
            return ok, "nothing revealed" if ok else "a result shown, or no unconfirmed text"
        if goal["result"] == "pass":
            ok = contains_any(all_text, ["eligibility_pass"])
            return ok, "pass shown" if ok else "no pass result"
        if not contains_any(all_text, ["eligibility_fail"]):
            return False, "no fail result"
        crit = goal.get("criterion")
        if crit and not contains_any(all_text, [f"criterion/{crit}/fail"]):
            return False, f"fail shown but not for {crit}"
        return True, f"fail ({crit})"
    if kind == "faq":
        ok = contains_any(turn_text, [goal["key"]])
        return ok, "answer given" if ok else f"expected {goal['key']}"
    if kind == "refusal":
        wanted = goal.get("expect", ["out_of_scope", "fallback", "fallback_again", "clarify"])
        ok = contains_any(turn_text, wanted)
        return ok, "refused" if ok else f"expected one of {wanted}"
    if kind == "status":
        ok = contains_any(turn_text, goal["expect"])
        return ok, "answered" if ok else f"expected one of {goal['expect']}"
    raise ValueError(f"unknown goal type {kind!r} in {conv['id']}")


GOALS = {"register", "eligibility", "faq", "refusal", "status"}
SECTOR_KEYS = {k.removeprefix("sector/") for k in RESPONSES if k.startswith("sector/")}


def check_suite(convs: list[dict], who: dict[str, dict[str, str]]) -> int:
    """--check: every conversation loads, each step resolves to a message or a button press
    whose label some reply text offers, and each goal names what `check` needs. Returns the
    number of problems; FAQ keys without an answer in responses.yml yet are only listed."""
    problems: list[str] = []
    missing_keys: set[str] = set()
    labels = [v.lower() for v in RESPONSES.values() if "\n" not in v and len(v) <= 60]
    ids = [c.get("id") for c in convs]
    problems += [f"duplicate id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for conv in convs:
        cid = conv.get("id", "?")
        steps = conv.get("steps")
        if not isinstance(steps, list) or not steps:
            problems.append(f"{cid}: no steps")
            continue
        for n, step in enumerate(steps):
            if isinstance(step, dict) and set(step) == {"contact"}:
                try:
                    contact_phone(step["contact"], who)
                except KeyError as exc:
                    problems.append(f"{cid} step {n}: contact {exc}")
                continue
            if isinstance(step, dict):
                label = str(step.get("press", "")).lower()
                if set(step) != {"press"} or not label:
                    problems.append(f"{cid} step {n}: a mapping must be {{press: Label}} "
                                    "or {contact: person-or-number}")
                elif not any(label == x or label in x for x in labels):
                    problems.append(f"{cid} step {n}: no button text like {step['press']!r}")
                continue
            if not isinstance(step, (str, int)):
                problems.append(f"{cid} step {n}: {step!r} is not a message")
                continue
            try:
                shown = fill(str(step), who)
            except KeyError as exc:
                problems.append(f"{cid} step {n}: unknown person {exc} in {step!r}")
                continue
            if re.search(r"\{[^}]*\}", shown):
                problems.append(f"{cid} step {n}: unresolved placeholder in {shown!r}")
        goal = conv.get("goal") or {}
        kind = goal.get("type")
        if kind not in GOALS:
            problems.append(f"{cid}: goal type {kind!r}")
            continue
        turn = goal.get("turn", -1)
        if not isinstance(turn, int) or not -len(steps) <= turn < len(steps):
            problems.append(f"{cid}: goal turn {turn!r} outside the steps")
        if kind == "register":
            if goal.get("kpm") not in who:
                problems.append(f"{cid}: unknown kpm {goal.get('kpm')!r}")
            if goal.get("sector") not in SECTOR_KEYS:
                problems.append(f"{cid}: unknown sector {goal.get('sector')!r}")
            if not isinstance(goal.get("months"), int):
                problems.append(f"{cid}: months {goal.get('months')!r} is not a number")
        elif kind == "eligibility":
            if goal.get("result") not in ("pass", "fail", "unconfirmed"):
                problems.append(f"{cid}: result {goal.get('result')!r}")
            crit = goal.get("criterion")
            if crit and f"criterion/{crit}/fail" not in RESPONSES:
                problems.append(f"{cid}: unknown criterion {crit!r}")
        elif kind == "faq":
            key = str(goal.get("key", ""))
            if not key.startswith("faq/"):
                problems.append(f"{cid}: faq key {key!r}")
            elif key not in RESPONSES:
                missing_keys.add(key)
        else:
            wanted = goal.get("expect", [] if kind == "status" else ["out_of_scope"])
            if not wanted:
                problems.append(f"{cid}: {kind} goal without expect")
            problems += [f"{cid}: expect {w!r} is not a response key" for w in wanted
                         if w not in RESPONSES]
    per_goal: dict[str, int] = defaultdict(int)
    for conv in convs:
        per_goal[(conv.get("goal") or {}).get("type", "?")] += 1
    counts = ", ".join(f"{g} {n}" for g, n in sorted(per_goal.items()))
    print(f"{len(convs)} conversations: {counts}")
    for p in problems:
        print(f"  PROBLEM {p}")
    if missing_keys:
        print("  note: FAQ keys with no answer in actions/responses.yml yet: "
              + ", ".join(sorted(missing_keys)))
    print("check: ok" if not problems else f"check: {len(problems)} problem(s)")
    return len(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run one conversation by id")
    parser.add_argument("--verbose", action="store_true", help="print failed transcripts")
    parser.add_argument("--suite", type=Path, default=SUITE,
                        help="folder of conversation files (default tests/conversations)")
    parser.add_argument("--check", action="store_true",
                        help="load and resolve the suite only; no model, no database")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default results/<suite folder name>.json)")
    parser.add_argument("--min-rate", type=float, default=None, metavar="RATE",
                        help="exit with status 1 when the overall success rate is lower")
    args = parser.parse_args()
    suite = args.suite
    if not suite.is_absolute() and not suite.is_dir():
        suite = ROOT / suite  # a path given from the repository root
    if not suite.is_dir():
        parser.error(f"no such suite folder: {args.suite}")
    if args.out is None:
        args.out = ROOT / "results" / f"{suite.resolve().name}.json"

    convs = load_suite(args.only, suite)
    who = people()
    if args.check:
        return 1 if check_suite(convs, who) else 0
    settings = Settings.from_env()
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prokus-conv-") as tmp_name, \
            nlu_url(settings) as url:
        tmp = Path(tmp_name)
        template = make_template(tmp)
        client = make_nlu_client(settings, url)
        for i, conv in enumerate(convs):
            db_path = tmp / f"conv-{i}.db"
            shutil.copy(template, db_path)
            engine = make_engine(f"sqlite:///{db_path}")
            assistant = build_assistant(settings, client, engine)
            try:
                transcript = drive(assistant, str(700000 + i), conv["steps"], who)
                ok, why = check(conv, transcript, make_sessionmaker(engine), who)
            except Exception as exc:  # a crash is a failed conversation, reported as such
                transcript, ok, why = [], False, f"crash: {type(exc).__name__}: {exc}"
            finally:
                assistant.nlu_pool.shutdown(wait=False)
                engine.dispose()
            results.append({"id": conv["id"], "file": conv["file"], "goal": conv["goal"]["type"],
                            "note": conv.get("note", ""), "ok": ok, "why": why,
                            "transcript": transcript})
            mark = "ok  " if ok else "FAIL"
            print(f"{mark} {conv['goal']['type']:<12} {conv['id']:<34} {why}", flush=True)
            if args.verbose and not ok:
                for t in transcript:
                    print(f"      > {t['user']}\n      < " + t["bot"].replace("\n", "\n        ")
                          + (f"  {t['buttons']}" if t.get("buttons") else ""))
    per_goal: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per_goal[r["goal"]].append(r["ok"])
    summary = {goal: {"n": len(v), "ok": sum(v), "rate": round(sum(v) / len(v), 3)}
               for goal, v in sorted(per_goal.items())}
    total = sum(r["ok"] for r in results)
    overall = round(total / len(results), 3) if results else 0.0
    print("\nsuccess rate per goal type")
    for goal, s in summary.items():
        print(f"  {goal:<12} {s['ok']:>3}/{s['n']:<3} {s['rate']:.3f}")
    print(f"  {'overall':<12} {total:>3}/{len(results):<3} {overall:.3f}  (target >= 0.90)")
    print(f"({time.monotonic() - started:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"overall": overall, "n": len(results), "per_goal": summary,
                                    "conversations": results}, indent=2, ensure_ascii=False))
    print(f"written: {args.out}")
    if args.min_rate is not None and overall < args.min_rate:
        print(f"FAILED: overall success rate {overall:.3f} < {args.min_rate:.2f}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
