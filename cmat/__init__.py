"""cmat: exact cost tracking and budgets for Claude Code.

The Python API mirrors the command line: every stage of the pipeline is importable on its own
(`cmat.transcripts`, `cmat.catalog`, `cmat.pricing`, `cmat.ledger`, `cmat.ingest`,
`cmat.tasks`, `cmat.attribution`, `cmat.reports`, `cmat.budgets`, `cmat.insight`);
cmat.layers and docs/architecture.md map them. For orchestrators: `from cmat import
CostTracker` (cmat/tracker.py).
"""

from cmat.version import __version__  # noqa: F401  (cmat.__version__)


def __getattr__(name: str):
    # Imported on first use: `import cmat` stays instant for the hooks and the status line.
    if name == "CostTracker":
        from cmat.tracker import CostTracker

        return CostTracker
    raise AttributeError(f"module 'cmat' has no attribute {name!r}")
