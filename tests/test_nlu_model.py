"""Training the NLU model: a failure is one clear CLI error with the tail of Rasa's log."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.settings import Settings
from nlu.model import TrainingError, log_tail, model_path, train

FAILING_RASA = """#!/bin/sh
echo "Training NLU model..."
i=0
while [ $i -lt 30 ]; do echo "noise line $i"; i=$((i+1)); done
printf 'Epochs:  50%%|#####     | 50/100\\r'
echo "InvalidConfigException: the pipeline component 'Nope' does not exist" >&2
exit 3
"""


def fake_rasa(tmp_path: Path, script: str) -> Path:
    """An executable standing in for `rasa`."""
    path = tmp_path / "rasa"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_failed_training_raises_with_the_tail_of_the_log(tmp_path):
    rasa = fake_rasa(tmp_path, FAILING_RASA)
    log = tmp_path / "train.log"
    with pytest.raises(TrainingError) as raised:
        train(tmp_path, rasa, tmp_path / "models", log_file=log, echo=None)
    message = str(raised.value)
    assert "rasa exited with 3" in message and str(log) in message
    assert "InvalidConfigException" in message  # stderr is in the log, and in the tail
    assert "noise line 29" in message and "noise line 5" not in message  # only the tail
    assert "Training NLU model" in log.read_text()  # the whole output is kept
    assert not model_path(tmp_path, tmp_path / "models").exists()


def test_cli_nlu_train_failure_is_a_click_error_not_a_traceback(tmp_path):
    settings = Settings(project_root=tmp_path, rasa_bin=fake_rasa(tmp_path, FAILING_RASA))
    done = CliRunner().invoke(main, ["nlu", "train"], obj=settings)
    assert done.exit_code == 1
    assert isinstance(done.exception, SystemExit)
    assert "NLU training failed" in done.output and "InvalidConfigException" in done.output
    assert "Traceback" not in done.output
    assert (tmp_path / "data" / "nlu-train.log").is_file()


def test_a_successful_training_keeps_only_the_new_model(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "nlu-old.tar.gz").write_text("old")
    target = model_path(tmp_path, models)
    rasa = fake_rasa(tmp_path, f"#!/bin/sh\necho trained\ntouch '{target}'\n")
    assert train(tmp_path, rasa, models, log_file=tmp_path / "t.log", echo=None) == target
    assert sorted(p.name for p in models.iterdir()) == [target.name]


def test_log_tail_splits_progress_bar_redraws(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("a\n\nb\r c \rd\n")
    assert log_tail(log, 2) == [" c", "d"]
