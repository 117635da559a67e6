"""Reviewed not-understood messages as NLU data (issue 14 item 4): what operators may label
a message with, and the export behind `prokus nlu export-reviewed`.

The export writes `nlu/data/reviewed.yml` (training; the model fingerprint covers every
nlu/data/*.yml, so the next `make train` learns from it) and keeps a share aside as
`nlu/tests/reviewed_set.yml` (a fresh test set `prokus nlu eval` reports on). Which file a
message goes to depends only on its normalised text (and the seed): a hash, so the split is
the same on every run and a message never moves between the two as others are added.

Both files are rebuilt on each run from what is in them already plus the labelled
messages in the database: a hand correction in a file is kept (for a message in both, the
file wins), and exporting from a fresh database loses nothing. A message is never written
when its normalised text is in any other nlu/data or nlu/tests file, and never twice.

Pure Python (PyYAML), like nlu/evaluation.py.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nlu.evaluation import load_examples, normalise

TRAINING_FILE = Path("nlu/data/reviewed.yml")
TEST_FILE = Path("nlu/tests/reviewed_set.yml")
OUT_OF_SCOPE = "out_of_scope"
# Intents that are not labels a person would give: the retrieval intent itself (its faq/*
# answers are the labels) and Rasa's fallback.
NOT_LABELS = {"faq", "nlu_fallback"}
INTENT_NAMES = {
    "affirm": "Ya / setuju", "cancel": "Batal", "deny": "Tidak / menolak",
    "goodbye": "Pamit", "greet": "Salam", "inform": "Menjawab isian (data diri, usaha)",
    "out_of_scope": "Di luar cakupan Prokus", "thanks": "Terima kasih",
}
HEADER = {
    "training": ("Operator-reviewed messages the bot did not understand (issue 14). Written by\n"
                 "`prokus nlu export-reviewed`; entries already here are kept when it runs\n"
                 "again, so a hand correction stays. Never a line of nlu/tests/ or of the\n"
                 "other nlu/data files."),
    "test": ("A fresh test set: operator-reviewed messages kept out of training (issue 14).\n"
             "Written by `prokus nlu export-reviewed` (a stable share chosen by a hash of\n"
             "each message); `prokus nlu eval` reports on it. Never in nlu/data/."),
}
_BRACKETS = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")"})


@dataclass(frozen=True)
class LabelChoice:
    value: str
    title: str
    group: str   # "intent" or "faq"


def label_choices(root: Path, texts: dict[str, str] | None = None) -> list[LabelChoice]:
    """The labels an operator can pick: the domain's intents (nlu/domain.yml) and its FAQ
    answers (the `utter_faq/*` responses) as faq/<key>, out_of_scope included. Titles come
    from the button labels of actions/responses.yml (`label/<name>`) when there is one."""
    domain = yaml.safe_load((root / "nlu" / "domain.yml").read_text(encoding="utf-8")) or {}
    if texts is None:
        path = root / "actions" / "responses.yml"
        texts = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() \
            else {}

    def title(name: str) -> str:
        found = texts.get(f"label/{name}") or INTENT_NAMES.get(name) or name
        return " ".join(str(found).split())

    intents = [LabelChoice(name, title(name), "intent")
               for name in sorted(str(i) for i in domain.get("intents") or [])
               if name not in NOT_LABELS]
    faqs = sorted({key.removeprefix("utter_") for key in domain.get("responses") or {}
                   if str(key).startswith("utter_faq/")})
    return intents + [LabelChoice(key, title(key), "faq") for key in faqs]


def label_values(root: Path) -> set[str]:
    return {choice.value for choice in label_choices(root)}


# ---------------------------------------------------------------------- export
def clean_example(text: str) -> str:
    """One line of Rasa YAML: whitespace collapsed, and no [ ] { } (they would be read as
    entity annotations)."""
    return " ".join(text.translate(_BRACKETS).split())


def goes_to_test(text: str, share: float, seed: int = 0) -> bool:
    """Whether a message belongs to the test set: a hash of its normalised text (and the
    seed) below `share`; the same answer on every run and on every machine."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{normalise(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


@dataclass
class ExportResult:
    training: int = 0
    test: int = 0
    new: int = 0                     # from the database, not in either file before
    kept_from_files: int = 0
    duplicates: int = 0              # the same normalised text seen again
    already_in_data: int = 0         # in another nlu/data file
    in_test_sets: int = 0            # in another nlu/tests file
    unknown_label: int = 0           # a label the domain no longer has
    empty: int = 0                   # nothing left to learn from after normalising
    per_label: Counter = field(default_factory=Counter)


def _examples_outside(folder: Path, skip: Path) -> set[str]:
    """Normalised texts of every YAML file under `folder` except `skip`."""
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*.yml")):
        if path.resolve() == skip.resolve():
            continue
        found.update(normalise(text) for text, _ in load_examples(path))
    return found


def _existing(path: Path) -> list[tuple[str, str]]:
    return load_examples(path) if path.is_file() else []


def write_nlu_yaml(path: Path, examples: Iterable[tuple[str, str]], comment: str) -> None:
    """A Rasa 3.1 NLU file: one block per label (sorted), examples sorted."""
    by_label: dict[str, list[str]] = {}
    for text, label in examples:
        by_label.setdefault(label, []).append(text)
    lines = ['version: "3.1"', *(f"# {line}" for line in comment.splitlines()), "nlu:"]
    for label in sorted(by_label):
        lines += [f"- intent: {label}", "  examples: |"]
        lines += [f"    - {text}" for text in sorted(set(by_label[label]), key=str.casefold)]
    if not by_label:
        lines[-1] = "nlu: []"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def export(root: Path, labelled: Iterable[tuple[str, str]], test_share: float = 0.2,
           seed: int = 0) -> ExportResult:
    """Merge the files' entries with `labelled` (text, label) from the database, filter and
    split them, and rewrite nlu/data/reviewed.yml and nlu/tests/reviewed_set.yml."""
    if not 0 <= test_share < 1:
        raise ValueError("test_share must be at least 0 and below 1")
    training_path, test_path = root / TRAINING_FILE, root / TEST_FILE
    in_data = _examples_outside(root / "nlu" / "data", training_path)
    in_tests = _examples_outside(root / "nlu" / "tests", test_path)
    allowed = label_values(root)
    result = ExportResult()
    chosen: dict[str, tuple[str, str]] = {}   # normalised text -> (text, label)

    def consider(text: str, label: str, from_file: bool) -> None:
        line, key = clean_example(text), normalise(text)
        if not key:
            result.empty += 1
        elif label not in allowed:
            result.unknown_label += 1
        elif key in in_tests:
            result.in_test_sets += 1
        elif key in in_data:
            result.already_in_data += 1
        elif key in chosen:
            result.duplicates += 1
        else:
            chosen[key] = (line, label)
            if from_file:
                result.kept_from_files += 1
            else:
                result.new += 1

    for text, label in _existing(training_path) + _existing(test_path):
        consider(text, label, from_file=True)
    for text, label in labelled:
        consider(text, label, from_file=False)
    training, test = [], []
    for key, (text, label) in chosen.items():
        (test if goes_to_test(key, test_share, seed) else training).append((text, label))
        result.per_label[label] += 1
    for path, rows, kind in ((training_path, training, "training"), (test_path, test, "test")):
        if rows or path.exists():  # no empty file where there was none (a new fingerprint)
            write_nlu_yaml(path, rows, HEADER[kind])
    result.training, result.test = len(training), len(test)
    return result


def reviewed_test_set(root: Path) -> Path | None:
    """nlu/tests/reviewed_set.yml when it exists and holds at least one example."""
    path = root / TEST_FILE
    return path if path.is_file() and load_examples(path) else None

