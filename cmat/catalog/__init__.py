"""The model price catalog.

    schema.py      a model's prices and price rules
    load.py        the layers (built-in, the user's, a project's), validated and cached
    resolve.py     ModelService: which entry a transcript's model id is
    edit.py        writing the user's layer (add, set-default)
    update.py      merging LiteLLM's or a cmat price file into the user's layer
"""

from cmat.catalog.resolve import ModelService

__all__ = ["ModelService"]
