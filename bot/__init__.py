"""Channels (console, Telegram), the CLI, settings and wiring."""
