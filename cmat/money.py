"""How an amount of dollars is shown, everywhere cmat shows one: to the cent.

JSON output keeps full precision; text rounds to cents like an invoice, and an amount too
small to show as a cent reads `<$0.01` rather than a misleading `$0.00`.
"""

from __future__ import annotations


def usd(value: float | None, unpriced: int = 0) -> str:
    """An amount; `unpriced` requests (of models the catalog lacks) make it a lower bound,
    marked `+?`, and an amount that is nothing but unpriced reads "unpriced", never $0."""
    if value is None or (unpriced and not value):
        return "unpriced"
    text = "<$0.01" if 0 < value < 0.005 else f"${value:,.2f}"
    return text + ("+?" if unpriced else "")
