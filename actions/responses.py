"""User-facing texts, loaded once from `responses.yml` and the files of `responses.d/`
(keyed by name; a key defined twice is an error), so each feature can keep its texts in its
own file."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("responses.yml")
EXTRA_DIR = Path(__file__).with_name("responses.d")


def _read(path: Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path} must map names to texts")
    return data


class Responses:
    """Look up a text by key and fill in its `{placeholders}`."""

    def __init__(self, texts: dict[str, str]) -> None:
        self._texts = texts

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Responses:
        """The texts of `path`; for the default file also those of `responses.d/*.yml`."""
        data = _read(path)
        if path == DEFAULT_PATH and EXTRA_DIR.is_dir():
            for extra in sorted(EXTRA_DIR.glob("*.yml")):
                more = _read(extra)
                twice = sorted(set(more) & set(data))
                if twice:
                    raise ValueError(f"{extra} defines {', '.join(twice)} again")
                data.update(more)
        return cls({k: v.strip() for k, v in data.items()})

    def __call__(self, key: str, **values: object) -> str:
        return self._texts[key].format(**values) if values else self._texts[key]

    def __contains__(self, key: str) -> bool:
        return key in self._texts

    def __iter__(self):
        return iter(self._texts)

    def raw(self, key: str) -> str:
        """The text with its `{placeholders}` unfilled."""
        return self._texts[key]


@cache
def shared() -> Responses:
    """The default texts, loaded once per process (for code that has no Dialogue at hand:
    the console's pages, the operator's side of a handoff)."""
    return Responses.load()
