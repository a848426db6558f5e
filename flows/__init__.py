"""Prefect flows: the training flow and the daily forecast flow. They only wire tasks together."""
