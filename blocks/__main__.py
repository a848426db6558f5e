"""`python -m blocks setup|automations`: the project's block and automation commands.

    python -m blocks setup [--create-container] [--fred-requests-per-minute R] [--fred-burst B]
                                                     blocks from FRED_API_KEY, EMAIL_*, NOTIFICATION_EMAIL,
                                                     AZURE_STORAGE_CONNECTION_STRING, AZURE_CONTAINER_NAME
                                                     (environment or ./.env); the FRED budget `fred-api`
    python -m blocks automations [--notify-block T/N] [--tag T] [--daily-flow F]
                                 [--deadline-minutes M] [--hook-grace-seconds S]

Both talk to the Prefect API that PREFECT_API_URL (or the active profile) points at. See
docs/alerting.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command; returns the exit code."""
    from blocks import automations, setup

    parser = argparse.ArgumentParser(
        prog="python -m blocks", description="Prefect blocks and automations of market-forecast."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    setup_parser = commands.add_parser(
        "setup", help="register block types; create/update blocks from environment variables"
    )
    setup.add_arguments(setup_parser)
    automations_parser = commands.add_parser("automations", help="create/update the failure and deadline automations")
    automations.add_arguments(automations_parser)
    args = parser.parse_args(argv)
    if args.command == "setup":
        return setup.run_setup(
            setup.read_environment(),
            create_missing_container=args.create_container,
            requests_per_minute=args.fred_requests_per_minute,
            burst=args.fred_burst,
        )
    return automations.run_automations(args)


if __name__ == "__main__":
    sys.exit(main())
