"""A click group that imports each subcommand's module only when that subcommand is used."""

from __future__ import annotations

import errno
import importlib
import sys

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

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        """click's main with one meaning per exit code: 0 ok, 1 a check failed, 2 a user error
        (one line on stderr), 130 interrupted. Beyond click's own handling: Ctrl-C anywhere
        prints "interrupted" and exits 130 (click would print "Aborted!" and exit 1); a request
        too large for the memory (rnngap.resources.ResourceError, or an allocation that fails
        anyway) is one line and exit 2; a closed stdout pipe is not an error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from rnngap.resources import ResourceError
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("\ninterrupted (Ctrl-C)", err=True)
            sys.exit(130)
        except click.UsageError as exc:
            # one line: the message (click's may span lines, e.g. a list of choices) and where
            # to read more, instead of click's three-line usage block
            msg = " ".join(exc.format_message().split())
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {msg}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except ResourceError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo("Error: out of memory (the request is too large for this machine; ask "
                       "for less or set --max-memory to be refused up front)", err=True)
            sys.exit(2)
        except RuntimeError as exc:
            if "can't allocate memory" in str(exc) or "not enough memory" in str(exc):
                click.echo("Error: out of memory: " + str(exc).splitlines()[-1][:200], err=True)
                sys.exit(2)
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                sys.exit(0)
            raise
        sys.exit(rv if isinstance(rv, int) else 0)

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
