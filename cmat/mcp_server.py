"""A read-only Model Context Protocol server (official `mcp` SDK, stdio), so that Claude can
answer "what did this task cost?" from the same functions as the command line.

Read-only: the tools never change a task queue, a config or a transcript; the reports import
new transcript lines into cmat's own ledger first, as `cmat report` does.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from cmat import clock, paths
from cmat.budgets.limits import status_report
from cmat.catalog import ModelService
from cmat.errors import CmatError
from cmat.extras import require
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.reports import ReportQuery, build_report
from cmat.tasks.costs import enhancement_report, task_report
from cmat.version import __version__

INSTRUCTIONS = ("Costs of Claude Code sessions recorded by cmat: per task, per enhancement, "
                "per period and against budgets. All amounts are USD.")


def build_server(project: Path):
    require("mcp", "the MCP server")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("cmat", version=__version__, instructions=INSTRUCTIONS)

    def guarded(call):
        try:
            return call()
        except CmatError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(structured_output=True)
    def get_task_cost(task_id: str) -> dict[str, Any]:
        """What a task of the project's queue has cost: totals, per model and per session."""
        return guarded(lambda: task_report(project, task_id))

    @server.tool(structured_output=True)
    def get_enhancement_cost(name: str) -> dict[str, Any]:
        """What the tasks of an enhancement have cost, task by task, with the total."""
        def report() -> dict[str, Any]:
            found = enhancement_report(project, name)
            if not found["tasks"]:
                raise CmatError(f"no tasks belong to enhancement {name!r}")
            return found

        return guarded(report)

    @server.tool(structured_output=True)
    def get_cost_report(period: str = "daily", group_by: list[str] | None = None,
                        since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Spend over the whole Claude Code history by period ('daily', 'weekly', 'monthly' or
        'session'), optionally grouped by model, project, task, enhancement, agent or session;
        since/until are YYYY-MM-DD days in the machine's time zone."""
        def report() -> dict[str, Any]:
            try:
                first = date.fromisoformat(since) if since else None
                last = date.fromisoformat(until) if until else None
            except ValueError:
                raise CmatError("since and until are dates in YYYY-MM-DD form") from None
            query = ReportQuery(period, first, last, by=tuple(group_by or ()))
            query.validate()
            with Ledger() as ledger:
                scan(ledger, ModelService(project), paths.transcript_roots())
                return build_report(ledger, query)

        return guarded(report)

    @server.tool(structured_output=True)
    def get_budget_status() -> dict[str, Any]:
        """Every budget that applies to the project: spent, limit, percent, reset time."""
        def report() -> dict[str, Any]:
            with Ledger() as ledger:
                return status_report(project, ledger, clock.now())

        return guarded(report)

    return server


MAX_REQUEST_BYTES = 64 * 1024  # a request line over this is refused, never held in memory


class BoundedLines:
    """Standard input as lines of at most `limit` bytes: a longer line is read past, in
    pieces, and refused with a word on stderr (where Claude Code logs a server's output)."""

    def __init__(self, raw, limit: int = MAX_REQUEST_BYTES):
        self.raw = raw
        self.limit = limit

    def readline(self, size: int = -1) -> str:
        import sys

        while True:
            line = self.raw.readline(self.limit + 1)
            if len(line) <= self.limit:
                return line.decode("utf-8", "replace")
            while line and not line.endswith(b"\n"):
                line = self.raw.readline(self.limit)
            sys.stderr.write(f"cmat mcp: refused a request over {self.limit // 1024} KiB\n")
            sys.stderr.flush()


def run(project: Path) -> None:
    import sys

    server = build_server(project)  # first: it says what to install if mcp is missing
    import anyio
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # the SDK's own run_stdio_async, with bounded input

    async def serve() -> None:
        stdin = anyio.wrap_file(BoundedLines(sys.stdin.buffer))
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream,
                               lowlevel.create_initialization_options())

    anyio.run(serve)
