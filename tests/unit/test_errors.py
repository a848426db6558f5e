"""Secrets never reach a message: the one redaction every error and alert goes through."""

from __future__ import annotations

from blocks.redaction import redact


def test_redaction_hides_given_secrets_and_key_value_secrets() -> None:
    text = (
        "GET /fred?series_id=X&api_key=abc123 failed; AccountKey=k3y==;EndpointSuffix=x; https://u:pw@h/; token tok-42"
    )
    hidden = redact(text, "tok-42", None, "")
    assert "abc123" not in hidden and "k3y==" not in hidden and ":pw@" not in hidden and "tok-42" not in hidden
    assert "api_key=***" in hidden and "AccountKey=***" in hidden and "series_id=X" in hidden
