"""Sub-commands of ``c2net``: each module has ``add_arguments(parser)`` and ``run(args)``."""
