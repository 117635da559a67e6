"""LinearEnsemble: a TF-IDF + logistic-regression classifier averaged with DIET.

DIET alone generalised worse to unseen wording than a plain TF-IDF + logistic regression,
and it was confidently wrong (half of its wrong answers on a fresh set came with
confidence >= 0.96). A linear model on word and character n-grams is a different kind of
learner: where the two agree the answer stays confident, where they disagree the
confidence drops, so the FallbackClassifier and the "which did you mean?" buttons see the
doubt. docs/nlu.md has the measurements that chose it.

Place it after DIETClassifier (with `ranking_length: 0`, so DIET ranks every intent) and
after the ResponseSelector, and before the FallbackClassifier:

- The linear model is trained on fine labels: each intent, and each FAQ sub-intent
  (`faq/cost`) on its own. An intent's probability is the sum of its labels'.
- intent: `diet_weight * DIET + (1 - diet_weight) * linear`, ranking re-sorted.
- FAQ sub-intent: the ResponseSelector's ranking averaged with the linear model's
  probabilities of the sub-intents (renormalised within `faq`) by `selector_weight`.

The text it reads is the token lemmas set by the SlangNormalizer ("sy" -> "saya"), so
both models see the same normalised words.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

MODEL_FILE = "linear.pkl"
SELECTOR = "response_selector"


def normalised_text(message: Message) -> Text:
    """The message as the featurizers see it: token lemmas joined by spaces."""
    tokens = message.get(TOKENS_NAMES[TEXT]) or []
    if tokens:
        return " ".join((t.lemma or t.text).lower() for t in tokens)
    return (message.get(TEXT) or "").lower()


def fine_label(message: Message) -> Optional[Text]:
    """`faq/cost` for a retrieval intent's example, the intent name otherwise."""
    return message.get(INTENT_RESPONSE_KEY) or message.get(INTENT)


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True
)
class LinearEnsemble(GraphComponent):
    """Average DIET's intent ranking (and the ResponseSelector's) with a linear model's."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "diet_weight": 0.5,
            "selector_weight": 0.5,
            "C": 10.0,
            "word_ngrams": [1, 2],
            "char_ngrams": [2, 5],
            "retrieval_intent": "faq",
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage,
                 resource: Resource, model: Any = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.model = model

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> "LinearEnsemble":
        return cls(config, model_storage, resource)

    def _pipeline(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, make_pipeline

        word, char = self.config["word_ngrams"], self.config["char_ngrams"]
        features = FeatureUnion([
            ("word", TfidfVectorizer(ngram_range=tuple(word), sublinear_tf=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(char),
                                     sublinear_tf=True)),
        ])
        classifier = LogisticRegression(C=float(self.config["C"]), max_iter=3000)
        return make_pipeline(features, classifier)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [(normalised_text(m), fine_label(m))
                    for m in training_data.intent_examples if fine_label(m)]
        if len({label for _, label in examples}) >= 2:
            self.model = self._pipeline()
            self.model.fit([t for t, _ in examples], [label for _, label in examples])
        with self._model_storage.write_to(self._resource) as directory:
            with open(directory / MODEL_FILE, "wb") as fh:
                pickle.dump(self.model, fh)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "LinearEnsemble":
        try:
            with model_storage.read_from(resource) as directory:
                with open(directory / MODEL_FILE, "rb") as fh:
                    # Our own file, written by `train` into the model archive.
                    model = pickle.load(fh)  # noqa: S301
        except (ValueError, FileNotFoundError):
            model = None
        return cls(config, model_storage, resource, model)

    # ------------------------------------------------------------------ prediction
    def linear_probabilities(self, message: Message) -> Dict[Text, float]:
        """Fine label -> probability from the linear model."""
        probs = self.model.predict_proba([normalised_text(message)])[0]
        return {str(label): float(p) for label, p in zip(self.model.classes_, probs)}

    def process(self, messages: List[Message]) -> List[Message]:
        if self.model is None:
            return messages
        for message in messages:
            fine = self.linear_probabilities(message)
            self._combine_intents(message, fine)
            self._combine_selector(message, fine)
        return messages

    def _combine_intents(self, message: Message, fine: Dict[Text, float]) -> None:
        linear: Dict[Text, float] = defaultdict(float)
        for label, p in fine.items():
            linear[label.split("/", 1)[0]] += p
        diet = {r[INTENT_NAME_KEY]: float(r[PREDICTED_CONFIDENCE_KEY])
                for r in message.get(INTENT_RANKING_KEY) or []}
        if not diet:  # DIET absent: the linear model alone
            diet = dict(linear)
        w = float(self.config["diet_weight"])
        combined = {name: w * diet.get(name, 0.0) + (1 - w) * linear.get(name, 0.0)
                    for name in set(diet) | set(linear)}
        ranking = sorted(combined.items(), key=lambda item: -item[1])
        message.set(INTENT, {INTENT_NAME_KEY: ranking[0][0],
                             PREDICTED_CONFIDENCE_KEY: ranking[0][1]}, add_to_output=True)
        message.set(INTENT_RANKING_KEY,
                    [{INTENT_NAME_KEY: n, PREDICTED_CONFIDENCE_KEY: c} for n, c in ranking],
                    add_to_output=True)

    def _combine_selector(self, message: Message, fine: Dict[Text, float]) -> None:
        retrieval = self.config["retrieval_intent"]
        selectors = message.get(SELECTOR) or {}
        name = retrieval if retrieval in selectors else "default"
        selector = selectors.get(name)
        if not selector:
            return
        prefix = f"{retrieval}/"
        linear = {k: p for k, p in fine.items() if k.startswith(prefix)}
        total = sum(linear.values())
        if total <= 0:
            return
        selected = {r[INTENT_RESPONSE_KEY]: float(r[PREDICTED_CONFIDENCE_KEY])
                    for r in selector.get("ranking") or []}
        w = float(self.config["selector_weight"])
        combined = {k: w * selected.get(k, 0.0) + (1 - w) * linear.get(k, 0.0) / total
                    for k in set(selected) | set(linear)}
        ranking = sorted(combined.items(), key=lambda item: -item[1])
        best, confidence = ranking[0]
        response = dict(selector.get("response") or {})
        if response.get(INTENT_RESPONSE_KEY) != best:
            response["responses"] = [{"text": f"{best} (see actions/responses.yml)"}]
        response.update({INTENT_RESPONSE_KEY: best, PREDICTED_CONFIDENCE_KEY: confidence,
                         "utter_action": f"utter_{best}"})
        selector["response"] = response
        selector["ranking"] = [{INTENT_RESPONSE_KEY: k, PREDICTED_CONFIDENCE_KEY: c}
                               for k, c in ranking[:10]]
        selectors[name] = selector
        message.set(SELECTOR, selectors, add_to_output=True)
