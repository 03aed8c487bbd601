"""`python -m app.entrypoints.cli`: the same program as the `aiapi` console script."""

from app.entrypoints.cli.main import main

main()
