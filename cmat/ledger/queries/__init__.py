"""Every question asked of the ledger, answered in SQL here and nowhere else, grouped by whom
it serves: spend (budgets, the status line), tasks, reports, contents, alerts and overrides,
live sessions, sync. Callers ask; they do not write SQL. Ledger mixes the groups in."""
