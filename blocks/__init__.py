"""The project's own Prefect block types, and the command that registers and fills them.

Imported by every Prefect process (server, worker, CLI) that has this package installed, through
the `prefect.collections` entry point: keep it light (no pandas, no TensorFlow). The commands live
in `blocks.setup` and `blocks.automations` (`python -m blocks setup|automations`).
"""

from blocks.fred import FredCredentials
from blocks.notifications import EmailAlerts

__all__ = ["EmailAlerts", "FredCredentials"]
