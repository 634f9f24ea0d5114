"""A click group that imports each subcommand's module only when that subcommand is used."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Subcommands given as ``{name: ("module:attribute", short help)}``, imported on use.

    ``--help`` lists them from the short help alone, so listing commands imports nothing heavy.
    """

    def __init__(self, *args, lazy: dict[str, tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self._lazy:
            return super().get_command(ctx, cmd_name)
        path, help_text = self._lazy[cmd_name]
        module, attr = path.split(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name == module:
                return _unavailable(cmd_name, help_text)
            raise
        return getattr(mod, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self._lazy[name][1]) for name in sorted(self._lazy)]
        rows += [(n, c.get_short_help_str()) for n, c in sorted(self.commands.items())
                 if n not in self._lazy]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=help_text, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def _cmd(args):  # pragma: no cover - only while a room is unbuilt
        raise click.ClickException(f"'{name}' is not built in this version of rnngap yet.")

    return _cmd
