"""Typed settings, read once from the environment (and `.env`) and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Everything the processes need to know; no engine, client or token at import time."""

    project_root: Path = PROJECT_ROOT
    database_url: str = ""
    nlu_url: str | None = None
    nlu_port: int = 5005
    nlu_timeout: float = 3.0
    nlu_retries: int = 1
    nlu_threshold: float = 0.4
    rasa_bin: Path | None = None
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org/bot"
    log_level: str = "INFO"
    log_json: bool = True
    outbox_rate: float = 30.0        # messages per second, all workers together
    outbox_per_chat: float = 1.0     # seconds between two messages to one chat

    @property
    def models_dir(self) -> Path:
        return self.project_root / "models"

    @property
    def data_dir(self) -> Path:
        return self.project_root / "data"

    @property
    def rasa_executable(self) -> Path:
        return self.rasa_bin or self.project_root / ".venv-nlu" / "bin" / "rasa"

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, env_file: Path | None = None
    ) -> Settings:
        """Build settings from `.env` (if present) overlaid with the process environment."""
        root = PROJECT_ROOT
        values: dict[str, str] = {}
        env_path = env_file if env_file is not None else root / ".env"
        if env_path.is_file():
            values.update({k: v for k, v in dotenv_values(env_path).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        get = values.get
        database_url = get("DATABASE_URL") or f"sqlite:///{root / 'data' / 'prokus.db'}"
        return cls(
            project_root=root,
            database_url=database_url,
            nlu_url=(get("NLU_URL") or None),
            nlu_port=int(get("NLU_PORT", "5005")),
            nlu_timeout=float(get("NLU_TIMEOUT", "3")),
            nlu_retries=int(get("NLU_RETRIES", "1")),
            nlu_threshold=float(get("NLU_THRESHOLD", "0.4")),
            rasa_bin=Path(get("RASA_BIN")) if get("RASA_BIN") else None,
            telegram_bot_token=(get("TELEGRAM_BOT_TOKEN") or None),
            telegram_api_url=get("TELEGRAM_API_URL", "https://api.telegram.org/bot"),
            log_level=get("LOG_LEVEL", "INFO").upper(),
            log_json=_bool(get("LOG_JSON", "1")),
            outbox_rate=float(get("OUTBOX_RATE", "30")),
            outbox_per_chat=float(get("OUTBOX_PER_CHAT", "1")),
        )
