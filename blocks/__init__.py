"""The project's own Prefect block types, and the command that registers and fills them."""

from blocks.fred import FredCredentials

__all__ = ["FredCredentials"]
