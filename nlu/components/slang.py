"""SlangNormalizer: map Indonesian slang and abbreviations to standard words.

Runs after the tokenizer and before the featurizers. It rewrites each token's `lemma`
(which CountVectorsFeaturizer reads by default), never the token text or its offsets,
so entity spans and regex entities still point at what the user actually typed.

The dictionary is the Colloquial Indonesian Lexicon shipped offline in the `indoNLP`
package (MIT; about 3,900 usable entries), overlaid with our own list in
`slang_id.yml`, which wins where the two disagree (e.g. Javanese "ndak" means "tidak").
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Text

import yaml
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

OWN_DICTIONARY = Path(__file__).with_name("slang_id.yml")
_ELONGATION = re.compile(r"([a-z])\1{2,}")


def load_dictionary(use_lexicon: bool = True, path: Path = OWN_DICTIONARY) -> Dict[Text, Text]:
    """Return slang -> standard form, lowercased; our own entries override the lexicon."""
    mapping: Dict[Text, Text] = {}
    if use_lexicon:
        from indoNLP.preprocessing import SLANG_DATA

        mapping.update({k.lower(): v.lower() for k, v in SLANG_DATA.items() if k and v})
    with open(path, encoding="utf-8") as fh:
        own = yaml.safe_load(fh) or {}
    mapping.update({str(k).lower(): str(v).lower() for k, v in own.items()})
    # Identity entries add nothing.
    return {k: v for k, v in mapping.items() if k != v}


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class SlangNormalizer(GraphComponent):
    """Set each token's lemma to the standard form of a slang word."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"use_lexicon": True, "squeeze_elongation": True}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.squeeze = bool(config.get("squeeze_elongation", True))
        self.mapping = load_dictionary(bool(config.get("use_lexicon", True)))

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SlangNormalizer":
        return cls(config)

    def normalize_word(self, word: Text) -> Text:
        lowered = word.lower()
        if lowered in self.mapping:
            return self.mapping[lowered]
        if self.squeeze:
            squeezed = _ELONGATION.sub(r"\1", lowered)
            if squeezed != lowered:
                return self.mapping.get(squeezed, squeezed)
        return word

    def _normalize(self, message: Message) -> None:
        for token in message.get(TOKENS_NAMES[TEXT]) or []:
            token.lemma = self.normalize_word(token.text)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for message in training_data.training_examples:
            self._normalize(message)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalize(message)
        return messages
