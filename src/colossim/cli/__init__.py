"""The ``colossim`` command line: thin typer sub-apps over the pure core."""
