"""The running service: settings, storage, the persona engine, transports and the CLI."""

from bot.settings import Settings

__all__ = ["Settings"]
