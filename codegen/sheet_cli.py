"""The `sheet` and `problem` subcommands (worked solution sheets, instructor mode)."""


def add_commands(sub) -> None:
    """Register the sheet commands on the CLI's subparsers."""
