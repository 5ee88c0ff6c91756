"""Prefect flows and tasks: thin wiring of bot, gates and reports."""
