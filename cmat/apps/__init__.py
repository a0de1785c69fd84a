"""The coding agents cmat reads beside Claude Code, each in a module of its own that finds
its log files and turns them into UsageRecords: Codex CLI (codex.py), Gemini CLI (gemini.py).
cmat.ingest.app_readers lists them.

A request of another agent is stored with `source` = "APP:PROVIDER" (Claude Code's own have
none): reports group and filter by either half (`--by app,provider`); a request recorded
through CostTracker has "api:PROVIDER".
"""

from __future__ import annotations

CLAUDE_CODE = "claude-code"


def source_tag(app: str, provider: str) -> str:
    return f"{app}:{provider}"


def app_sql(column: str = "source") -> str:
    """SQL: the app of a request, from its source column."""
    return (f"CASE WHEN {column} IS NULL THEN '{CLAUDE_CODE}' WHEN instr({column}, ':') = 0"
            f" THEN {column} ELSE substr({column}, 1, instr({column}, ':') - 1) END")


def provider_sql(column: str = "source") -> str:
    """SQL: the provider that served a request, from its source column."""
    return (f"CASE WHEN {column} IS NULL THEN 'anthropic' WHEN instr({column}, ':') = 0"
            f" THEN 'unknown' ELSE substr({column}, instr({column}, ':') + 1) END")
