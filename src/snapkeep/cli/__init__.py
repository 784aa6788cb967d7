"""The ``snapkeep`` command line: a client of the REST API (one module per command group)."""
