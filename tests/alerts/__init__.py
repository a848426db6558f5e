"""Integration tests of issue 4: blocks from the environment, failure alerts, automations."""
