"""Custom Rasa 3.6 graph components; imported only inside the Rasa process (.venv-nlu)."""
