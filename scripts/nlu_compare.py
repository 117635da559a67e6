"""Compare NLU pipelines on the held-out set, with k-fold cross-validation and timings.

Runs in the Rasa environment: `.venv-nlu/bin/python scripts/nlu_compare.py` (or
`make nlu-compare`). Pipelines: ours (config.yml), ours without the slang normaliser,
Rasa's default config, and a TF-IDF + logistic-regression baseline. Writes
results/nlu-compare.json and prints a Markdown table for docs/nlu.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")  # time real training, not cache hits
warnings.filterwarnings("ignore")

import yaml  # noqa: E402

from nlu.evaluation import Prediction, load_examples, score, strip_annotations  # noqa: E402

DATA = ROOT / "nlu" / "data"
DOMAIN = ROOT / "nlu" / "domain.yml"
TEST_SET = ROOT / "nlu" / "tests" / "test_set.yml"
FRESH_SET = ROOT / "nlu" / "tests" / "fresh_set.yml"
FRESH_SET_2 = ROOT / "nlu" / "tests" / "fresh_set_2.yml"
FRESH_SET_3 = ROOT / "nlu" / "tests" / "fresh_set_3.yml"
FRESH_SET_4 = ROOT / "nlu" / "tests" / "fresh_set_4.yml"
FRESH_SET_5 = ROOT / "nlu" / "tests" / "fresh_set_5.yml"


def without_slang(config_text: str) -> str:
    """config.yml minus the SlangNormalizer step."""
    return re.sub(r"\n  # Slang[^\n]*\n  - name: nlu\.components\.slang\.SlangNormalizer\n"
                  r"(    [^\n]*\n)*", "\n", config_text)


def configs(tmp: Path) -> dict[str, Path]:
    ours = (ROOT / "config.yml").read_text()
    no_slang = tmp / "config-no-slang.yml"
    no_slang.write_text(without_slang(ours))
    assert "SlangNormalizer" not in no_slang.read_text()
    return {
        "ours": ROOT / "config.yml",
        "ours-without-slang": no_slang,
        "rasa-default": ROOT / "nlu" / "configs" / "rasa-default.yml",
    }


# ------------------------------------------------------------------ seeds
SEEDED = ("DIETClassifier", "ResponseSelector")  # the steps that draw random numbers


def rasa_default_pipeline() -> list[dict]:
    """The pipeline Rasa fills in for rasa-default.yml, read from the comment it wrote there."""
    text = (ROOT / "nlu" / "configs" / "rasa-default.yml").read_text()
    body = "\n".join(line[4:] for line in text.splitlines() if line.startswith("#   "))
    pipeline = yaml.safe_load(body)
    assert pipeline and pipeline[0]["name"] == "WhitespaceTokenizer", "rasa-default.yml changed"
    return pipeline


def seeded_config(name: str, seed: int, tmp: Path) -> Path:
    """`name`'s config with every random step given `seed`.

    Rasa's default pipeline sets no seed, so two trainings on the same data differ; ours
    ships with seed 42. Comparing one draw of each says little: the seed study trains each
    pipeline once per seed and reports the spread.
    """
    if name == "ours":
        config = yaml.safe_load((ROOT / "config.yml").read_text())
    elif name == "rasa-default":
        config = {"recipe": "default.v1", "language": "id",
                  "pipeline": rasa_default_pipeline(), "policies": []}
    else:
        raise ValueError(f"no seeded config for {name}")
    steps = [step for step in config["pipeline"] if step["name"] in SEEDED]
    assert len(steps) == 2, f"{name}: expected DIET and ResponseSelector"
    for step in steps:
        step["random_seed"] = seed
    path = tmp / f"{name}-seed{seed}.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def seed_study(seeds: list[int], names: list[str], tests: dict[str, list[tuple[str, str]]],
               tmp: Path) -> dict[str, dict]:
    """Train each pipeline once per seed on nlu/data; score every held-out set."""
    from statistics import mean, pstdev

    results: dict[str, dict] = {}
    for name in names:
        runs: dict[str, list[dict]] = defaultdict(list)
        for seed in seeds:
            summaries = evaluate_pipeline(f"{name} seed {seed}", seeded_config(name, seed, tmp),
                                          tests, DATA, tmp / f"{name}-seed{seed}")
            for set_name, summary in summaries.items():
                summary.pop("errors")
                runs[set_name].append({"seed": seed, **summary})
        results[name] = {"seeds": seeds, "sets": {}}
        for set_name, rows in runs.items():
            stats = {}
            for key in ("intent_accuracy", "macro_f1", "oos_recall"):
                values = [r[key] for r in rows]
                stats[key] = {"mean": round(mean(values), 4), "sd": round(pstdev(values), 4),
                              "min": min(values), "max": max(values), "runs": values}
            results[name]["sets"][set_name] = stats
    return results


def print_seed_table(results: dict[str, dict]) -> None:
    names = list(results)
    sets = list(next(iter(results.values()))["sets"])
    print("\nIntent accuracy over seeds, mean ± sd (min–max):")
    print("| set | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for set_name in sets:
        cells = []
        for name in names:
            acc = results[name]["sets"][set_name]["intent_accuracy"]
            cells.append(f"{acc['mean']:.3f} ± {acc['sd']:.3f} ({acc['min']:.3f}–{acc['max']:.3f})")
        print(f"| {set_name} | " + " | ".join(cells) + " |")


# ------------------------------------------------------------------ Rasa pipelines
def train_rasa(config: Path, data: Path, out: Path) -> tuple[Path, float]:
    from rasa.model_training import train_nlu

    started = time.perf_counter()
    model = train_nlu(str(config), str(data), str(out), domain=str(DOMAIN))
    return Path(model), time.perf_counter() - started


def rasa_predict(model: Path, texts: list[str]) -> tuple[list[Prediction], list[float]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()
    predictions, latencies = [], []
    for text in texts:
        started = time.perf_counter()
        data = loop.run_until_complete(agent.parse_message(text))
        latencies.append((time.perf_counter() - started) * 1000)
        predictions.append(Prediction.from_rasa(data))
    loop.close()
    return predictions, latencies


# ------------------------------------------------------------------ TF-IDF baseline
class TfidfBaseline:
    """Word 1-2 grams + char_wb 2-5 grams, logistic regression; reject under a threshold."""

    threshold = 0.3

    def fit(self, examples: list[tuple[str, str]]) -> float:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        started = time.perf_counter()
        features = FeatureUnion([
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        ])
        self.model = make_pipeline(features, LogisticRegression(C=10, max_iter=2000))
        self.model.fit([t for t, _ in examples], [label for _, label in examples])
        return time.perf_counter() - started

    def predict(self, texts: list[str]) -> tuple[list[Prediction], list[float]]:
        predictions, latencies = [], []
        classes = list(self.model.classes_)
        for text in texts:
            started = time.perf_counter()
            probs = self.model.predict_proba([text])[0]
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = sorted(zip(classes, probs, strict=True), key=lambda x: -x[1])
            label, confidence = ranked[0]
            intent = "nlu_fallback" if confidence < self.threshold else label.split("/")[0]
            faq_key = label if label.startswith("faq/") else None
            predictions.append(Prediction(intent, float(confidence), faq_key,
                                          tuple((c, float(p)) for c, p in ranked[:5])))
        return predictions, latencies


# ------------------------------------------------------------------ cross-validation
def raw_blocks() -> tuple[dict[str, list[str]], list[dict]]:
    """Training lines per intent (annotations kept) and the non-intent blocks."""
    per_intent: dict[str, list[str]] = defaultdict(list)
    other: list[dict] = []
    for file in sorted(DATA.glob("*.yml")):
        for block in yaml.safe_load(file.read_text())["nlu"]:
            if "intent" in block:
                per_intent[block["intent"]] += [
                    line.strip()[2:] for line in block["examples"].splitlines()
                    if line.strip().startswith("- ")
                ]
            else:
                other.append(block)
    return per_intent, other


def folds(k: int, seed: int = 42):
    """Yield (train_dir, test_examples) for stratified k-fold splits of nlu/data."""
    per_intent, other = raw_blocks()
    rng = random.Random(seed)
    assignment: dict[str, list[list[str]]] = {}
    for intent, lines in per_intent.items():
        shuffled = lines[:]
        rng.shuffle(shuffled)
        assignment[intent] = [shuffled[i::k] for i in range(k)]
    for fold in range(k):
        tmp = Path(tempfile.mkdtemp(prefix=f"fold{fold}-"))
        blocks = list(other)
        test: list[tuple[str, str]] = []
        for intent, parts in assignment.items():
            train_lines = [line for i, part in enumerate(parts) if i != fold for line in part]
            blocks.append({"intent": intent,
                           "examples": "".join(f"- {line}\n" for line in train_lines)})
            test += [(strip_annotations(line), intent) for line in parts[fold]]
        (tmp / "train.yml").write_text(yaml.safe_dump({"version": "3.1", "nlu": blocks},
                                                      allow_unicode=True, sort_keys=False))
        yield tmp, test


def threshold_sweep(test: list[tuple[str, str]], predictions: list[Prediction]) -> list[dict]:
    """Re-score with other FallbackClassifier thresholds, from the confidence ranking."""
    rows = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        rescored = []
        for pred in predictions:
            ranked = [(n, c) for n, c in pred.ranking if n != "nlu_fallback"]
            top, confidence = ranked[0] if ranked else (pred.intent, pred.confidence)
            intent = "nlu_fallback" if confidence < threshold else top
            rescored.append(Prediction(intent, confidence, pred.faq_key, pred.ranking))
        report = score(test, rescored)
        rows.append({"threshold": threshold, "intent_accuracy": report.intent_accuracy,
                     "oos_recall": report.oos_recall,
                     "in_scope_rejected": report.in_scope_rejected})
    return rows


def evaluate_pipeline(name: str, config: Path | None, tests: dict[str, list[tuple[str, str]]],
                      data: Path, out: Path, sweep: bool = False) -> dict[str, dict]:
    """Train once on `data`, then score every test set; return a summary per set."""
    if config is None:
        baseline = TfidfBaseline()
        seconds = baseline.fit(load_examples(data))
        predict = baseline.predict
    else:
        model, seconds = train_rasa(config, data, out)

        def predict(texts):
            return rasa_predict(model, texts)

    summaries = {}
    for set_name, test in tests.items():
        predictions, latencies = predict([t for t, _ in test])
        report = score(test, predictions, latencies)
        summary = report.summary()
        summary["train_seconds"] = round(seconds, 1)
        summary["errors"] = report.errors
        if sweep and config is not None:
            summary["threshold_sweep"] = threshold_sweep(test, predictions)
        print(f"  {name} [{set_name}]: acc={summary['intent_accuracy']:.3f} "
              f"f1={summary['macro_f1']:.3f} oos_recall={summary['oos_recall']:.3f} "
              f"train={seconds:.0f}s", flush=True)
        summaries[set_name] = summary
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="k for cross-validation (0: skip)")
    parser.add_argument("--only", nargs="*", help="pipelines to run (default: all)")
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=CONFIG",
                        help="more Rasa configs to compare (for experiments)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="seed study instead: train ours and Rasa's default once per seed "
                             "on the whole data, score the held-out sets, report the spread "
                             "(default output results/nlu-seeds.json)")
    parser.add_argument("--out", type=Path, help="JSON output (default results/nlu-compare.json)")
    args = parser.parse_args()
    if args.out is None:
        name = "nlu-seeds.json" if args.seeds else "nlu-compare.json"
        args.out = ROOT / "results" / name
    logging.disable(logging.WARNING)
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="nlu-compare-"))
    pipelines: dict[str, Path | None] = {**configs(tmp), "tfidf-logreg": None}
    if args.only is not None:
        pipelines = {k: v for k, v in pipelines.items() if k in args.only}
    pipelines.update({k: Path(v) for k, v in (e.split("=", 1) for e in args.extra)})
    tests = {"held_out": load_examples(TEST_SET), "fresh": load_examples(FRESH_SET),
             "fresh_2": load_examples(FRESH_SET_2), "fresh_3": load_examples(FRESH_SET_3),
             "fresh_4": load_examples(FRESH_SET_4), "fresh_5": load_examples(FRESH_SET_5)}
    results: dict[str, dict] = {}
    print(f"Held-out sets: {', '.join(f'{k} {len(v)}' for k, v in tests.items())}", flush=True)
    if args.seeds:
        names = [n for n in ("ours", "rasa-default") if args.only is None or n in args.only]
        results = seed_study(args.seeds, names, tests, tmp)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        shutil.rmtree(tmp, ignore_errors=True)
        print_seed_table(results)
        print(f"\nwritten: {args.out}")
        return
    for name, config in pipelines.items():
        results[name] = evaluate_pipeline(name, config, tests, DATA, tmp / name, sweep=True)
    if args.folds:
        print(f"{args.folds}-fold cross-validation on nlu/data", flush=True)
        for fold, (fold_dir, fold_test) in enumerate(folds(args.folds), start=1):
            print(f" fold {fold}/{args.folds}", flush=True)
            for name, config in pipelines.items():
                summary = evaluate_pipeline(name, config, {"fold": fold_test}, fold_dir,
                                            tmp / f"{name}-fold{fold}")["fold"]
                summary.pop("errors")
                results[name].setdefault("cv_folds", []).append(summary)
            shutil.rmtree(fold_dir, ignore_errors=True)
        for name in pipelines:
            runs = results[name]["cv_folds"]
            results[name]["cv_mean"] = {
                key: round(sum(r[key] for r in runs) / len(runs), 4)  # type: ignore[misc]
                for key in ("intent_accuracy", "macro_f1", "faq_sub_intent_accuracy",
                            "oos_recall", "in_scope_rejected", "train_seconds")
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)

    print("\n| pipeline | held-out acc | macro F1 | faq sub-intent | oos recall | "
          "in-scope rejected | fresh acc | fresh 2 acc | fresh 3 acc | fresh 4 acc | "
          "fresh 5 acc | fresh 5 oos recall | train s | CV acc | CV macro F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        h, cv = result["held_out"], result.get("cv_mean", {})
        f, f2, f3 = result["fresh"], result["fresh_2"], result["fresh_3"]
        f4, f5 = result["fresh_4"], result["fresh_5"]
        print(f"| {name} | {h['intent_accuracy']:.3f} | {h['macro_f1']:.3f} | "
              f"{h['faq_sub_intent_accuracy']:.3f} | {h['oos_recall']:.3f} | "
              f"{h['in_scope_rejected']:.3f} | {f['intent_accuracy']:.3f} | "
              f"{f2['intent_accuracy']:.3f} | {f3['intent_accuracy']:.3f} | "
              f"{f4['intent_accuracy']:.3f} | {f5['intent_accuracy']:.3f} | "
              f"{f5['oos_recall']:.3f} | {h['train_seconds']} | "
              f"{cv.get('intent_accuracy', '-')} | {cv.get('macro_f1', '-')} |")
    sweep = results.get("ours", {}).get("held_out", {}).get("threshold_sweep")
    if sweep:
        print("\nFallback threshold sweep (ours, held-out set):")
        print("| threshold | intent acc | oos recall | in-scope rejected |\n|---|---|---|---|")
        for row in sweep:
            print(f"| {row['threshold']} | {row['intent_accuracy']:.3f} | "
                  f"{row['oos_recall']:.3f} | {row['in_scope_rejected']:.3f} |")
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
