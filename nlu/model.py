"""Model fingerprint and training: a model is rebuilt only when its inputs change."""

from __future__ import annotations

import codecs
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TextIO

MODEL_PREFIX = "nlu-"
TAIL_LINES = 20


class TrainingError(RuntimeError):
    """`rasa train` failed; the message ends with the last lines of its log."""


def training_inputs(root: Path) -> list[Path]:
    """Return every file the model depends on, in a stable order."""
    files = [root / "config.yml", root / "requirements-nlu.txt", root / "nlu" / "domain.yml"]
    files += sorted((root / "nlu" / "data").rglob("*.yml"))
    components = root / "nlu" / "components"
    if components.is_dir():
        files += sorted(p for p in components.rglob("*") if p.suffix in (".py", ".yml"))
    return [f for f in files if f.is_file()]


def fingerprint(root: Path) -> str:
    """Return a short hash of the config, training data and custom components."""
    digest = hashlib.sha256()
    for path in training_inputs(root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def model_path(root: Path, models_dir: Path | None = None) -> Path:
    """Return where the model for the current inputs lives (it may not exist yet)."""
    return (models_dir or root / "models") / f"{MODEL_PREFIX}{fingerprint(root)}.tar.gz"


def rasa_env(root: Path) -> dict[str, str]:
    """Return the environment for Rasa subprocesses: our components importable, no
    telemetry, quiet TensorFlow."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")])),
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def train(root: Path, rasa_bin: Path, models_dir: Path | None = None, force: bool = False,
          log_file: Path | None = None, echo: TextIO | None = sys.stderr) -> Path:
    """Train the NLU model unless one with the current fingerprint exists; return its path.

    Rasa's output goes to `echo` (the terminal) and to `log_file` (default
    data/nlu-train.log); a failure raises TrainingError with the tail of that log.
    """
    target = model_path(root, models_dir)
    if target.exists() and not force:
        return target
    if not rasa_bin.exists():
        raise FileNotFoundError(
            f"Rasa is not installed at {rasa_bin}; run `make setup` first."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(rasa_bin), "train", "nlu",
        "--config", str(root / "config.yml"),
        "--nlu", str(root / "nlu" / "data"),
        "--domain", str(root / "nlu" / "domain.yml"),
        "--out", str(target.parent),
        "--fixed-model-name", target.name.removesuffix(".tar.gz"),
    ]
    log_file = log_file or root / "data" / "nlu-train.log"
    code, tail = _run_logged(cmd, root, log_file, echo)
    if code != 0:
        raise TrainingError(
            f"NLU training failed (rasa exited with {code}). Last lines of {log_file}:\n"
            + "\n".join(tail)
        )
    if not target.exists():
        raise RuntimeError(f"Rasa finished but {target} was not written")
    for old in target.parent.glob(f"{MODEL_PREFIX}*.tar.gz"):
        if old != target:
            old.unlink()
    return target


def _run_logged(cmd: list[str], root: Path, log_file: Path,
                echo: TextIO | None) -> tuple[int, list[str]]:
    """Run `cmd`, copying its output as it comes (progress bars included) to `log_file` and
    `echo`; return (exit code, last lines of the log)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with open(log_file, "wb") as log, subprocess.Popen(
        cmd, cwd=root, env=rasa_env(root), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as process:
        assert process.stdout is not None
        for chunk in iter(lambda: process.stdout.read1(8192), b""):
            log.write(chunk)
            if echo is not None:
                echo.write(decoder.decode(chunk))
                echo.flush()
    return process.returncode, log_tail(log_file)


def log_tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last non-empty lines of a log (a progress bar's redraws count as lines)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 16384))
        text = fh.read().decode("utf-8", errors="replace")
    found = [line.rstrip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return found[-lines:]
