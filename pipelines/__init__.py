"""One module per stage; each has a ``run(config)`` that reads top to bottom."""
