"""Ledger maintenance: prices again after a catalog change (reprice), a ledger started afresh
from the transcripts (rebuild)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from cmat.catalog import ModelService
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.ledger.schema import LEGACY_PREFIX
from cmat.pricing import stored_cost
from cmat.usage import TokenCounts

# From this many changed requests, when they are most of the ledger, its indexes are dropped
# and built again after (Ledger.bulk_load): updating them row by row costs more than twice as
# much (2.6 s against 0.8 s for 301,000 requests, and 1.0 s to build them, behind the command).
BULK_REPRICE_ROWS = 50_000


def reprice(ledger: Ledger, models: ModelService) -> tuple[int, int, int, int]:
    """Price every stored request again with the current catalog, from the stored token counts
    and the prices in force on each request's day (no transcript needed). Figures CMAT wrote
    before cmat keep theirs. A request whose cost and catalog are unchanged is left as it is
    (a sync has nothing of it to send again). Returns (requests repriced, requests left
    unpriced, requests rewritten, requests whose cost changed): a catalog of another version
    (any change to a layer, a default model's too) rewrites every request it prices, costs
    changed or not."""
    version = models.catalog.version
    updates = []
    priced = unpriced = costs_changed = 0
    for rowid, stored, stored_version, model, ts, *tokens, searches, speed, geo in \
            ledger.priceable_requests(LEGACY_PREFIX):
        entry = models.get_by_pattern(model)
        cost = None
        if entry is not None:
            cost = stored_cost(entry, ts, TokenCounts(*tokens), searches, speed, geo)
        priced += 1
        unpriced += cost is None
        costs_changed += cost != stored
        if cost != stored or stored_version != version:
            updates.append((cost, version, rowid))
    if updates:
        most = len(updates) >= BULK_REPRICE_ROWS and 2 * len(updates) >= priced
        with ledger.bulk_load() if most else contextlib.nullcontext(), ledger.transaction():
            ledger.set_costs(updates)
    return priced, unpriced, len(updates), costs_changed


def rebuild(path: Path, models: ModelService, roots: list[Path]) -> dict:
    """Start the ledger afresh, import every transcript under `roots`, and salvage from the old
    ledger whatever it still holds. The old file is never destroyed: it is kept beside the new
    one as `<name>.damaged-<time>` (or `.previous-<time>` when it was healthy)."""
    from cmat.ledger.recovery import ledger_state, salvage, set_aside  # no hook rebuilds

    state = ledger_state(path)
    kept = set_aside(path, state) if state != "missing" else None
    with Ledger(path) as fresh:
        result = scan(fresh, models, roots)
        salvaged, unreadable = (0, 0)
        if kept is not None and state != "empty":
            salvaged, unreadable = salvage(fresh, kept)
        carried = fresh.session_count()
    return {"previous_state": state, "damaged_copy": str(kept) if kept else None,
            "salvaged_requests": salvaged, "unreadable_chunks": unreadable,
            "sessions_carried_over": carried, **result.to_json()}
