"""Top-level conftest: its presence puts tests/ on sys.path, so areas share `clirun`."""
