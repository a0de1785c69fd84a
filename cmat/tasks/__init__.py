"""Tasks: the queue file (queue) and each task's figures from the ledger (costs)."""
