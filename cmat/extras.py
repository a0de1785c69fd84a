"""The optional parts of cmat (pyproject's extras) and what to do when one is missing.

cmat-costs is installed from a checkout or a wheel, not by name from PyPI, so "pip install
'cmat-costs[mcp]'" is no help: the message names the package itself, for the interpreter
cmat runs on, and the checkout form.
"""

from __future__ import annotations

import importlib.util
import sys

from cmat.errors import UsageError

# extra -> (the module it brings, the requirement as pyproject states it)
EXTRAS = {"mcp": ("mcp", "mcp>=2.3,<3"), "team": ("psycopg", "psycopg[binary]>=3.1"),
          "keyring": ("keyring", "keyring>=24")}


def installed(extra: str) -> bool:
    module = EXTRAS[extra][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, what: str) -> None:
    """Raise a UsageError saying how to install `extra` unless it is installed."""
    if installed(extra):
        return
    module, requirement = EXTRAS[extra]
    raise UsageError(f"{what} needs the {module} package (cmat's '{extra}' extra), which "
                     f"{sys.executable} does not have",
                     f"{sys.executable} -m pip install '{requirement}'; or, from a checkout "
                     f"of cmat: pip install -e '.[{extra}]'")
