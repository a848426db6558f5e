"""The flows' command line, generated from the flow's parameters and the settings model.

`python -m flows.train_model --help` lists every flow parameter and every setting with its
description and default, straight from the code (Prefect's parameter schema, which reads the flow's
docstring, and the pydantic fields of `Settings`), so the help can never drift from them:

    --as-of 2025-03-31 --output-dir data --storage-block T/N --fred-block fred   flow parameters
    --epochs 5 --series SP500 VIXCLS                                              settings
    --fetch.timeout-seconds 10 --backtest.horizons 1 5 10                         nested settings
    --groups '{"equities": ["SP500", "DJIA"], "risk": ["VIXCLS"]}'               mappings, as JSON

Values are validated by the same pydantic models as the flow's parameters, before any run starts:
a bad value exits with status 2 and a message naming the field (no run, so no failure alert). A run
that fails with one of the pipeline's own errors (tasks/core/errors.py) ends with `error: <what to
do>` on stderr and status 1, after the run's log, which names the error without Prefect's traceback
(kept at PREFECT_LOGGING_LEVEL=DEBUG); any other error keeps its traceback.

Ctrl-C (SIGINT) stops a run within `INTERRUPT_GRACE_SECONDS`, with status 130 and an `error:` line.
Without the grace period's end, Prefect would report the crash to a temporary server the same
Ctrl-C has stopped, retrying for minutes, while the training threads run on to their end.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from prefect import Flow
from prefect.client.schemas.objects import State
from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo

from tasks.core.errors import PipelineError
from tasks.core.settings import Settings

SETTINGS_PARAMETER = "settings"
# Seconds a run has, after Ctrl-C, to stop by itself before the process ends regardless.
INTERRUPT_GRACE_SECONDS = 10.0
INTERRUPTED_STATUS = 130  # 128 + SIGINT, as a shell reports it
# Prefect's loggers of flow and task runs: where a failed run's traceback is logged.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_sequence(annotation: object) -> bool:
    origins = {typing.get_origin(a) for a in (annotation, *typing.get_args(annotation))}
    return bool(origins & {tuple, list})


def _json(text: str) -> object:
    return cast(object, json.loads(text))


def _accepts_none(annotation: object) -> bool:
    return type(None) in typing.get_args(annotation)


def _text_or_none(text: str) -> str | None:
    """A setting that may be None takes `none` (or `null`) on the command line."""
    return None if text.strip().lower() in {"none", "null"} else text


def _is_mapping(annotation: object) -> bool:
    return typing.get_origin(annotation) is dict


def _setting_options(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, FieldInfo]]:
    """(option, dotted field path, field) for every leaf field of `model`, nested models flattened."""
    options: list[tuple[str, str, FieldInfo]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if _is_model(field.annotation):
            options += _setting_options(field.annotation, f"{path}.")  # type: ignore[arg-type]
        else:
            options.append((f"--{path.replace('_', '-')}", path, field))
    return options


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return ""
    return f" (default: {field.default})" if field.default is not None else ""


def build_parser(flow: Flow[..., Any]) -> tuple[argparse.ArgumentParser, list[tuple[str, str]]]:
    """The parser of `flow`'s command line, and (argparse dest, settings path) of each setting."""
    parser = argparse.ArgumentParser(
        prog=f"python -m flows.{Path(inspect.getfile(flow.fn)).stem}",
        description=(flow.description or "").strip().split("\n\n")[0],
    )
    run = parser.add_argument_group("flow parameters")
    schema = flow.parameters.properties
    for name, spec in schema.items():
        if name == SETTINGS_PARAMETER:
            continue
        option = f"--{name.replace('_', '-')}"
        help_text = (spec.get("description") or spec.get("title") or name).replace("%", "%%")
        if spec.get("default") is False:
            run.add_argument(option, dest=name, action="store_true", help=help_text)
        else:
            default = f" (default: {spec['default']})" if spec.get("default") is not None else ""
            run.add_argument(
                option, dest=name, metavar=name.upper(), default=argparse.SUPPRESS, help=help_text + default
            )
    # The flow's own word on its settings (its docstring, as the Prefect UI shows it): what it ignores.
    settings_help = schema.get(SETTINGS_PARAMETER, {}).get("description")
    group = parser.add_argument_group("settings (tasks/core/settings.py)", settings_help)
    settings_dests: list[tuple[str, str]] = []
    for option, path, field in _setting_options(Settings):
        dest = "setting:" + path
        nargs = "+" if _is_sequence(field.annotation) else None
        help_text = (field.description or path) + _default_text(field)
        metavar = path.rsplit(".", 1)[-1].upper()
        value: dict[str, Any] = {}
        if _is_mapping(field.annotation):
            value = {"type": _json, "metavar": "JSON"}
        elif _accepts_none(field.annotation):
            value = {"type": _text_or_none}
            help_text = f"{field.description or path} On the command line: none.{_default_text(field)}"
        group.add_argument(
            option,
            dest=dest,
            nargs=nargs,
            **({"metavar": metavar} | value),
            default=argparse.SUPPRESS,
            help=help_text.replace("%", "%%"),
        )
        settings_dests.append((dest, path))
    return parser, settings_dests


def parse_command_line(flow: Flow[..., Any], argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The flow's keyword arguments from the command line (settings validated into `Settings`)."""
    parser, settings_dests = build_parser(flow)
    values = vars(parser.parse_args(argv))
    overrides: dict[str, Any] = {}
    for dest, path in settings_dests:
        if dest in values:
            node = overrides
            *parents, leaf = path.split(".")
            for parent in parents:
                node = node.setdefault(parent, {})
            value = values.pop(dest)
            node[leaf] = None if value == [None] else value  # `--champion-gate.series none`
    try:
        settings = Settings.model_validate(overrides)
    except ValidationError as exc:
        _usage_error(parser, "invalid settings:\n" + validation_errors(exc, whole="settings"))
    # The flow's own annotations (validators included), checked before a run exists: Prefect would
    # check them too, but only after the run has started, failed it and called its failure hooks.
    # Together and in the signature's order, as Prefect does: a validator may read an earlier
    # parameter (the training settings' windows are checked against as_of).
    parameters = {**values, SETTINGS_PARAMETER: settings}
    try:
        _parameters_model(flow).model_validate(parameters)
    except ValidationError as exc:
        _usage_error(parser, "invalid flow parameters:\n" + validation_errors(exc, whole="parameters"))
    return parameters


def _parameters_model(flow: Flow[..., Any]) -> type[BaseModel]:
    """A pydantic model of the flow's parameters: their annotations and defaults, in order."""
    annotations = typing.get_type_hints(flow.fn, include_extras=True)
    fields: dict[str, Any] = {
        name: (annotations[name], ... if parameter.default is inspect.Parameter.empty else parameter.default)
        for name, parameter in inspect.signature(flow.fn).parameters.items()
    }
    return create_model("FlowParameters", **fields)


def validation_errors(exc: ValidationError, *, whole: str) -> str:
    """Validation errors, one line each, field path first (`whole` for a check of several fields).

    Without pydantic's echo that a list whose items were rejected is too short: `--series sp500` is
    one bad id, not an empty list.
    """
    errors = exc.errors()
    rejected_items = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    return "\n".join(
        f"  {'.'.join(str(part) for part in e['loc']) or whole}: {e['msg']}"
        for e in errors
        if not (e["type"] == "too_short" and tuple(e["loc"]) in rejected_items)
    )


def _usage_error(parser: argparse.ArgumentParser, message: str) -> typing.NoReturn:
    """Exit with status 2 and `message`, pointing at --help rather than printing the long usage."""
    parser.exit(2, f"{parser.prog}: error: {message}\n(see {parser.prog} --help)\n")


def _interrupted_line(flow: Flow[..., Any]) -> str:
    return (
        f"error: {flow.name} interrupted (Ctrl-C): nothing more is published. A run folder left without "
        "manifest.json is ignored by readers, and removed by a later run once older than "
        "storage.incomplete_folder_days; latest.json and champion.json "
        "are each written whole or not at all. Run the flow again."
    )


@contextlib.contextmanager
def _stopping_on_ctrl_c(flow: Flow[..., Any]) -> Iterator[None]:
    """Ctrl-C interrupts the run as usual, and ends the process if the run has not stopped in time.

    The process ends through the exit handlers (Prefect's temporary server is stopped by one), then
    `os._exit`: threads still training cannot be stopped otherwise. A second Ctrl-C ends it at once.
    Nothing is installed outside the main thread (signal handlers live there) or when SIGINT is not
    Python's default.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return

    announced = threading.Lock()

    def announce() -> None:  # the interrupted line, once, whichever way the process ends
        if announced.acquire(blocking=False):
            print(_interrupted_line(flow), file=sys.stderr, flush=True)

    def end_after_grace() -> None:
        time.sleep(INTERRUPT_GRACE_SECONDS)
        announce()
        atexit._run_exitfuncs()  # what a normal exit runs (os._exit skips it): the temporary server stops
        os._exit(INTERRUPTED_STATUS)

    def quit_at_once(signum: int, frame: object) -> None:
        # No exit handlers: the terminal's Ctrl-C has stopped the temporary server already.
        announce()
        os._exit(INTERRUPTED_STATUS)

    def on_interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, quit_at_once)
        print(f"\n{flow.name}: interrupted, stopping (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        threading.Thread(target=end_after_grace, name="end-after-ctrl-c", daemon=True).start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    except KeyboardInterrupt:
        announce()
        raise SystemExit(INTERRUPTED_STATUS) from None
    finally:
        # After a Ctrl-C, a second one still quits at once while the process winds down.
        if signal.getsignal(signal.SIGINT) is on_interrupt:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _pipeline_errors_without_traceback(record: logging.LogRecord) -> bool:
    """A log filter: drops the traceback from a run's record whose exception is one of the pipeline's own errors.

    Such an error's message says what happened and what to do; the traceback through Prefect's
    engine only buries it. Any other exception keeps its traceback, and so does every record when
    the logger is at DEBUG (PREFECT_LOGGING_LEVEL=DEBUG).
    """
    pipeline_error = record.exc_info is not None and isinstance(record.exc_info[1], PipelineError)
    if pipeline_error and not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
        record.exc_info = None
        record.exc_text = None
    return True


@contextlib.contextmanager
def _run_logs_filtered() -> Iterator[None]:
    """While the block runs, the run loggers log the pipeline's own errors without their traceback."""
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(_pipeline_errors_without_traceback)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_pipeline_errors_without_traceback)


def run_from_command_line(flow: Flow[..., Any], argv: Sequence[str] | None = None) -> None:
    """Run `flow` with the command line's arguments and print where its outputs went."""
    parameters = parse_command_line(flow, argv)
    with _stopping_on_ctrl_c(flow), _run_logs_filtered():
        state = cast(State, flow(**parameters, return_state=True))
    result = state.result(raise_on_failure=False)
    if isinstance(result, PipelineError):
        # The run's log above names the error; the last line says what to do.
        print(f"error: {flow.name} {state.name}: {result}", file=sys.stderr)
        raise SystemExit(1)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, dict):  # e.g. the daily flow on a day the NYSE is closed
        print(state.message)
        return
    print(f"{flow.name}: published {result['run_folder']} in {result['location']}")
    for key, value in result.items():
        if key not in ("run_folder", "location"):
            print(f"  {key}: {value}")
