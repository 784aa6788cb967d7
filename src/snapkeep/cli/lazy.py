"""A command group that imports a command's module only when that command is run.

Registering every group up front imported all the command modules and turned every command's signature into
click parameters on each run: about 0.3 s, for a ``snapkeep snapshot list`` that needs one group. Here only the
group named on the command line is imported and built. Whatever needs all the commands (``snapkeep --help``,
shell completion, the "did you mean" of a mistyped name) loads them all, so each group's help text is still
written once, in its own module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar

import typer
from typer._click import Command, Context  # typer's own copy of click, the classes its groups are made of
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A Typer group whose commands are named in :attr:`lazy` and built from their modules on first use."""

    lazy: ClassVar[Mapping[str, str]] = {}
    """Command name → ``"module:attribute"``: a Typer app (a group) or a command function, in listing order."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*self.lazy, *(name for name in super().list_commands(ctx) if name not in self.lazy)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            command = _build(self.lazy[cmd_name])
            command.name = cmd_name  # a Typer app's group has none of its own: it was named where added
            self.add_command(command)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        if args and args[0] not in self.lazy:  # not a lazy name: Typer suggests close ones among those built
            for name in self.lazy:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _build(target: str) -> Command:
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if isinstance(found, typer.Typer):
        return typer.main.get_group(found)
    single = typer.Typer(add_completion=False)  # a command function: the one command of an app of its own
    single.command()(found)
    return typer.main.get_command(single)
