"""One module per command; each module's docstring is its docopt usage."""
