"""The ``toytorch`` command line (typer)."""
