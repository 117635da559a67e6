"""NLU: Rasa training data and components, plus the bot-side client and server runner.

Only `client`, `model` and `server` are imported by the bot; nothing here imports rasa
except the custom components, which run inside the Rasa process (`.venv-nlu`).
"""
