"""cmat's version: its own module, so that what needs it imports nothing else of cmat."""

__version__ = "0.1.0"  # the same as pyproject.toml's (a test checks)
