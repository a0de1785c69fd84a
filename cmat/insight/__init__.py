"""Insight from the ledger: what to change to spend less (`optimize`), and what the next task
or prompt will cost (`estimate`). Every dollar figure is a re-pricing of the user's own
requests with the catalog, never a rule of thumb."""
