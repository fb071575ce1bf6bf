"""One module per ``posedistill`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``."""
