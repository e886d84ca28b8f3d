"""The live terminal console on the closed loop (Textual): `ndt console` (`apps.cli.console`)."""

from .app import COLUMNS, ConsoleData, TwinConsole

__all__ = ["COLUMNS", "ConsoleData", "TwinConsole"]
