"""cmat: exact cost tracking and budgets for Claude Code.

The Python API mirrors the command line: every stage of the pipeline is importable on its own
(`cmat.transcripts`, `cmat.catalog`, `cmat.pricing`, `cmat.ledger`, `cmat.ingest`,
`cmat.tasks`, `cmat.reports`, `cmat.budgets`); README's "Development" maps them.
"""

__version__ = "0.1.0"
