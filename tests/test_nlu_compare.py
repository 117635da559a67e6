"""scripts/nlu_compare.py's seed study builds the configs it trains (no Rasa needed here)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compare():
    script = ROOT / "scripts" / "nlu_compare.py"
    saved = dict(os.environ)  # the script sets Rasa's environment defaults on import
    spec = importlib.util.spec_from_file_location("nlu_compare", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.environ.clear()
    os.environ.update(saved)
    return module


@pytest.mark.parametrize("name", ["ours", "rasa-default"])
def test_seeded_config_seeds_every_random_step(compare, name, tmp_path):
    config = yaml.safe_load(compare.seeded_config(name, 7, tmp_path).read_text())
    steps = {step["name"]: step for step in config["pipeline"]}
    assert steps["DIETClassifier"]["random_seed"] == 7
    assert steps["ResponseSelector"]["random_seed"] == 7
    assert steps["FallbackClassifier"]["threshold"] == 0.3


def test_seeded_ours_is_config_yml_but_for_the_seed(compare, tmp_path):
    shipped = yaml.safe_load((ROOT / "config.yml").read_text())
    seeded = yaml.safe_load(compare.seeded_config("ours", 42, tmp_path).read_text())
    assert seeded == shipped  # config.yml ships with seed 42


def test_rasa_default_pipeline_is_the_one_rasa_wrote(compare):
    names = [step["name"] for step in compare.rasa_default_pipeline()]
    assert names == ["WhitespaceTokenizer", "RegexFeaturizer", "LexicalSyntacticFeaturizer",
                     "CountVectorsFeaturizer", "CountVectorsFeaturizer", "DIETClassifier",
                     "EntitySynonymMapper", "ResponseSelector", "FallbackClassifier"]
