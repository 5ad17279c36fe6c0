"""The ``musubi`` command line. Subcommands are imported only when they are invoked."""
