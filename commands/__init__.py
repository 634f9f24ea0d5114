"""Click subcommands, one module per command (imported lazily by ``rnngap.cli``).

Conventions every command follows (see ``_common``): user mistakes raise ``click.UsageError`` or
``click.BadParameter`` (exit 2); a failed verification exits 1 with a one-line reason; ``--json``
prints machine-readable output on stdout and nothing else there.
"""
