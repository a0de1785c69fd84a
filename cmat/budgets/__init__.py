"""Budgets: what a user may spend, and what happens as it is spent.

    config.py      the TOML configuration (the user's, and what a project's may add)
    limits.py      which budgets apply, what was spent against each, overrides
    alerts.py      alerts at thresholds, and their delivery to a webhook or a command
"""
