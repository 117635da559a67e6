"""Evaluate the model on a fresh set (default nlu/tests/fresh_set_2.yml) through the NLU
HTTP server, as `prokus nlu eval --test-set` does, and also count the WRONG answers given
with confidence >= 0.9 (issue 12: "before" and "after" figure).

Usage: .venv/bin/python scripts/eval_fresh.py [--test-set FILE] [--threshold 0.9]
Uses NLU_URL when set, otherwise starts a local server like the CLI (bot.cli.nlu_url).
Writes results/nlu-eval-fresh2.json and results/nlu-eval-fresh2-confusion.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bot.cli import nlu_url  # noqa: E402
from bot.settings import Settings  # noqa: E402
from nlu.evaluation import REJECT, coarse, format_summary, load_examples, run, write_report  # noqa: E402,E501


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-set", type=Path, default=ROOT / "nlu/tests/fresh_set_2.yml")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--name", default="nlu-eval-fresh2")
    args = parser.parse_args()
    examples = load_examples(args.test_set)
    settings = Settings.from_env()
    with nlu_url(settings) as url:
        # The server takes a token (Rasa's --auth-token): NLU_AUTH_TOKEN, or the one that
        # bot.cli.nlu_token generated for the local server it started.
        token = settings.nlu_auth_token or os.environ.get("NLU_AUTH_TOKEN")
        http = httpx.Client(base_url=url, timeout=30, params={"token": token} if token else None)

        def parse(text: str) -> dict:
            response = http.post("/model/parse", json={"text": text})
            response.raise_for_status()
            return response.json()
        with http:
            report = run(examples, parse)
    write_report(report, ROOT / "results", args.name)
    print(format_summary(report))
    wrong = [e for e in report.errors if coarse(str(e["gold"])) != coarse(str(e["predicted"]))
             or str(e["gold"]).startswith("faq/")]
    confident = [e for e in wrong if float(e["confidence"]) >= args.threshold]
    coarse_wrong = [e for e in wrong if coarse(str(e["gold"])) != coarse(str(e["predicted"]))]
    print(f"wrong answers (incl. wrong faq key)   {len(wrong)}")
    print(f"  of which confidence >= {args.threshold}        {len(confident)}")
    print(f"wrong intent class                    {len(coarse_wrong)}")
    print(f"  of which confidence >= {args.threshold}        "
          f"{sum(float(e['confidence']) >= args.threshold for e in coarse_wrong)}")
    print(f"oos messages accepted as in-scope     "
          f"{sum(coarse(str(e['gold'])) == REJECT for e in coarse_wrong)}")
    for e in sorted(confident, key=lambda e: -float(e["confidence"])):
        print(f"  {e['confidence']:.3f}  {e['text']!r}  gold {e['gold']}  got {e['predicted']}")
    print(f"report: results/{args.name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
