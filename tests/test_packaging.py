"""pyproject.toml declares what the code uses, and nothing it does not."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("actions", "bot", "db", "domain", "nlu", "outbox", "web")
# Used without an import statement, and why.
INDIRECT = {"psycopg": "SQLAlchemy loads it for postgresql+psycopg:// URLs"}


def imported_top_level_modules() -> set[str]:
    """Top-level modules imported anywhere in the application's source."""
    found: set[str] = set()
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (prometheus_client = prometheus-client)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_declared_dependency_is_imported():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {canonical(re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0]) for spec in declared}
    modules_of: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            modules_of.setdefault(canonical(distribution), set()).add(module)
    imported = imported_top_level_modules()
    unused = sorted(name for name in names - set(INDIRECT)
                    if not modules_of.get(name, set()) & imported)
    assert unused == [], f"declared in pyproject.toml but never imported: {unused}"
