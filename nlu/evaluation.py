"""Held-out NLU evaluation: intent accuracy, macro F1, FAQ sub-intents, out-of-scope.

Pure Python (stdlib + PyYAML + `nlu.client.Parse`, which needs no httpx), so it runs in
both environments: in `.venv` through the HTTP server (`prokus nlu eval`, the CI gate) and
in `.venv-nlu` on in-process models (`scripts/nlu_compare.py`). Rasa replies are read by
the bot's own reader, so the evaluation scores exactly what the bot would act on.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from nlu.client import Parse

REJECT = "REJECT"  # out_of_scope or nlu_fallback: the bot says it cannot help / asks again
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def strip_annotations(text: str) -> str:
    """`umur [35](age)` -> `umur 35`."""
    return _ANNOTATION.sub(r"\1", text)


def load_examples(path: Path) -> list[tuple[str, str]]:
    """Read (text, intent) pairs from a Rasa NLU YAML file or a folder of them."""
    files = sorted(path.rglob("*.yml")) if path.is_dir() else [path]
    examples: list[tuple[str, str]] = []
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for block in data.get("nlu") or []:
            if "intent" not in block:
                continue
            for line in str(block.get("examples", "")).splitlines():
                line = line.strip()
                if line.startswith("- "):
                    examples.append((strip_annotations(line[2:].strip()), block["intent"]))
    return examples


def normalise(text: str) -> str:
    """Lowercase, keep letters and digits only: to compare utterances across sets."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@dataclass(frozen=True)
class Prediction:
    """What a model said about one message: top intent, FAQ key, ranking."""

    intent: str
    confidence: float
    faq_key: str | None = None
    ranking: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_rasa(cls, data: dict) -> Prediction:
        """Read a Rasa parse reply with the bot's own reader (`nlu.client.Parse`)."""
        parse = Parse.from_rasa(data)
        return cls(parse.intent, parse.confidence, parse.faq_key, parse.ranking)


def coarse(label: str) -> str:
    """Map a gold or predicted intent to the class the bot acts on."""
    if label in ("out_of_scope", "nlu_fallback"):
        return REJECT
    return label.split("/", 1)[0]


@dataclass
class Report:
    n: int
    intent_accuracy: float
    macro_f1: float
    faq_sub_intent_accuracy: float
    full_accuracy: float
    oos_recall: float
    oos_precision: float
    in_scope_rejected: float
    ambiguous_clarified: int
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[dict[str, object]] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | None]:
        keys = ("n", "intent_accuracy", "macro_f1", "faq_sub_intent_accuracy", "full_accuracy",
                "oos_recall", "oos_precision", "in_scope_rejected", "ambiguous_clarified",
                "latency_ms_p50", "latency_ms_p95")
        return {k: getattr(self, k) for k in keys}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def score(examples: list[tuple[str, str]], predictions: list[Prediction],
          latencies_ms: list[float] | None = None) -> Report:
    """Compare predictions with gold labels."""
    confusion: dict[str, Counter] = defaultdict(Counter)
    errors: list[dict[str, object]] = []
    correct = full_correct = faq_total = faq_correct = 0
    reject_gold = reject_pred = reject_both = in_scope = in_scope_rejected = clarified = 0
    for (text, gold_label), pred in zip(examples, predictions, strict=True):
        gold, guess = coarse(gold_label), coarse(pred.intent)
        confusion[gold][guess] += 1
        predicted_full = pred.faq_key if guess == "faq" and pred.faq_key else pred.intent
        ok = gold == guess
        correct += ok
        if gold_label.startswith("faq/"):
            faq_total += 1
            faq_correct += ok and pred.faq_key == gold_label
        full_ok = ok and (not gold_label.startswith("faq/") or pred.faq_key == gold_label)
        full_correct += full_ok
        if gold == REJECT:
            reject_gold += 1
        else:
            in_scope += 1
            in_scope_rejected += guess == REJECT
            if pred.intent == "nlu_fallback":
                top_two = [coarse(name) for name, _ in pred.ranking if name != "nlu_fallback"][:2]
                clarified += gold in top_two
        reject_pred += guess == REJECT
        reject_both += gold == REJECT and guess == REJECT
        if not full_ok:
            errors.append({"text": text, "gold": gold_label, "predicted": predicted_full,
                           "confidence": round(pred.confidence, 3)})
    labels = sorted(set(confusion) | {g for row in confusion.values() for g in row})
    per_intent: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = confusion[label][label]
        fp = sum(confusion[g][label] for g in labels if g != label)
        fn = sum(confusion[label].values()) - tp
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
        per_intent[label] = {"precision": precision, "recall": recall, "f1": f1,
                             "support": sum(confusion[label].values())}
    gold_labels = [label for label in labels if per_intent[label]["support"]]
    latencies = sorted(latencies_ms or [])
    return Report(
        n=len(examples),
        intent_accuracy=_ratio(correct, len(examples)),
        macro_f1=round(statistics.fmean(per_intent[lab]["f1"] for lab in gold_labels), 4),
        faq_sub_intent_accuracy=_ratio(faq_correct, faq_total),
        full_accuracy=_ratio(full_correct, len(examples)),
        oos_recall=_ratio(reject_both, reject_gold),
        oos_precision=_ratio(reject_both, reject_pred),
        in_scope_rejected=_ratio(in_scope_rejected, in_scope),
        ambiguous_clarified=clarified,
        latency_ms_p50=round(statistics.median(latencies), 2) if latencies else None,
        latency_ms_p95=round(latencies[int(0.95 * (len(latencies) - 1))], 2) if latencies else None,
        per_intent=per_intent,
        confusion={g: dict(row) for g, row in confusion.items()},
        errors=errors,
    )


def run(examples: list[tuple[str, str]], parse: Callable[[str], dict],
        progress: Callable[[Iterable], Iterable] = iter) -> Report:
    """Parse every example (timing each call) and score the result."""
    predictions, latencies = [], []
    for text, _ in progress(examples):
        started = time.perf_counter()
        data = parse(text)
        latencies.append((time.perf_counter() - started) * 1000)
        predictions.append(Prediction.from_rasa(data))
    return score(examples, predictions, latencies)


def write_report(report: Report, out_dir: Path, name: str = "nlu-eval") -> tuple[Path, Path]:
    """Write `<name>.json` (everything) and `<name>-confusion.md` (readable) to out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    labels = sorted(report.confusion)
    columns = sorted({p for row in report.confusion.values() for p in row} | set(labels))
    lines = [f"# NLU confusion report ({report.n} held-out messages)", "",
             "Rows: gold class; columns: predicted class (REJECT = out_of_scope or fallback).",
             "", "| gold \\ predicted | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for gold in labels:
        row = report.confusion[gold]
        lines.append(f"| {gold} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    lines += ["", "## Per class", "", "| class | precision | recall | f1 | support |",
              "|---|---|---|---|---|"]
    for label, m in sorted(report.per_intent.items()):
        lines.append(f"| {label} | {m['precision']} | {m['recall']} | {m['f1']} | "
                     f"{int(m['support'])} |")
    lines += ["", "## Errors", "", "| text | gold | predicted | confidence |", "|---|---|---|---|"]
    lines += [f"| {e['text']} | {e['gold']} | {e['predicted']} | {e['confidence']} |"
              for e in report.errors]
    md_path = out_dir / f"{name}-confusion.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def format_summary(report: Report) -> str:
    s = report.summary()
    lines = [
        f"held-out messages           {s['n']}",
        f"intent accuracy             {s['intent_accuracy']:.3f}",
        f"macro F1                    {s['macro_f1']:.3f}",
        f"faq sub-intent accuracy     {s['faq_sub_intent_accuracy']:.3f}",
        f"accuracy incl. faq keys     {s['full_accuracy']:.3f}",
        f"out_of_scope recall         {s['oos_recall']:.3f}",
        f"out_of_scope precision      {s['oos_precision']:.3f}",
        f"in-scope wrongly rejected   {s['in_scope_rejected']:.3f}",
        f"  of which clarified (2-stage fallback offers the right intent): "
        f"{s['ambiguous_clarified']}",
    ]
    if s["latency_ms_p50"] is not None:
        lines.append(f"parse latency p50 / p95     {s['latency_ms_p50']:.1f} / "
                     f"{s['latency_ms_p95']:.1f} ms")
    return "\n".join(lines)
