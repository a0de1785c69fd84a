"""The layers of cmat, bottom first, following the data: transcripts are read, priced, stored,
attributed to tasks, then answered from (reports, budgets, team); the surfaces people touch sit
on top. A module imports only from its own layer or the layers below it
(tests/test_architecture.py fails on an import that points up, and on a module left out).

A module belongs to the layer of the longest name below that is it or a package above it
(the bare "cmat" is the package's own __init__ alone).
"""

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("cmat.errors", "cmat.request", "cmat.rates", "cmat.usage", "cmat.money",
                    "cmat.labels", "cmat.text", "cmat.colour", "cmat.version", "cmat.stats",
                    "cmat.clock", "cmat.paths", "cmat.untrusted", "cmat.fileio", "cmat.extras",
                    "cmat.web", "cmat.periods", "cmat.plans", "cmat.spool", "cmat.layers",
                    "cmat.detached", "cmat.claude.events", "cmat.claude.payload",
                    "cmat.claude.log")),
    ("settings", ("cmat.budgets.config",)),  # cmat.toml: budgets, team, retention, on_error
    ("read", ("cmat.transcripts", "cmat.apps")),
    ("price", ("cmat.catalog", "cmat.pricing")),
    ("store", ("cmat.ledger",)),
    ("import", ("cmat.ingest",)),
    ("tasks", ("cmat.tasks",)),
    ("attribute", ("cmat.attribution", "cmat.maintenance")),
    ("answer", ("cmat.reports", "cmat.blocks", "cmat.budgets", "cmat.insight", "cmat.team",
                "cmat.retention", "cmat.live")),
    ("surface", ("cmat.cli", "cmat.claude", "cmat.statusline", "cmat.dashboard",
                 "cmat.mcp_server", "cmat.metrics", "cmat.tracker", "cmat.entry",
                 "cmat.__main__", "cmat")),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of `module`'s layer (None: no prefix names it)."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            within = "." in prefix and module.startswith(prefix + ".")
            if (module == prefix or within) and len(prefix) > best:
                best, found = len(prefix), index
    return found
