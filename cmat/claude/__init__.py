"""Claude Code's side: the hooks and the status line it runs, and their installation.

    events.py      the events cmat hooks into (one table)
    payload.py     the JSON Claude Code sends on stdin
    runtime.py     what a hook does (record a session, check budgets)
    headroom.py    a budget check answered from the last full one's headroom
    install.py     cmat's entries in Claude Code's settings
    log.py         the hook log
"""
