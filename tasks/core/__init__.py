"""The pure forecasting core.

Calendar, alignment, features, model, training, intervals, backtest, forecast, metrics, promotion
rule, output schemas, stored-JSON contracts, demo source, settings, errors.

Nothing here imports Prefect, talks to a network, reads or writes files, or reads the clock: data
and "now" come in as arguments (tests/unit/test_architecture.py checks the imports).
"""
