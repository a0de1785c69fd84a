"""`cmat dashboard`: a local web page over the ledger, and the JSON API it reads.

    GET /                          the page (static/, Chart.js vendored: works offline)
    GET /api/v1/usage              = cmat report PERIOD --by ... --json
        ?period=daily|weekly|monthly|session&by=model,project&since=&until=&project=
    GET /api/v1/budgets            = cmat budget status --json
    GET /api/v1/alerts             = cmat alerts list --json
    GET /api/v1/suggestions        = cmat optimize --json   (?period=30d&since=&until=)
    GET /api/v1/blocks             = cmat blocks --active --json
    GET /api/v1/titles             the project's task titles by id (from its queue)

Every answer is computed by the same function as the command's, from the ledger, which the
server brings up to date (an incremental scan) at most every SCAN_INTERVAL_SECONDS.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import orjson

from cmat import clock
from cmat.errors import CmatError, UsageError

STATIC = Path(__file__).parent / "static"
SCAN_INTERVAL_SECONDS = 10.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".md": "text/plain; charset=utf-8"}


def usage(ledger, query: dict) -> dict:
    from datetime import date

    from cmat.periods import local_zone, zone
    from cmat.reports import ReportQuery, build_report, project_filter

    def day(name):
        if not query.get(name):
            return None
        try:
            return date.fromisoformat(query[name])
        except ValueError:
            raise UsageError(f"{name} must be a day such as 2026-12-01 (found "
                             f"{query[name][:40]!r})") from None

    by = tuple(part for part in (query.get("by") or "").split(",") if part)
    try:
        tz = zone(query["timezone"]) if query.get("timezone") else local_zone()
    except (LookupError, ValueError):
        raise UsageError(f"timezone must be an IANA name such as Europe/Paris (found "
                         f"{query['timezone'][:40]!r})") from None
    return build_report(ledger, ReportQuery(query.get("period") or "daily", day("since"),
                                            day("until"), tz, by,
                                            project_filter(query.get("project"))))


def budgets(ledger, project: Path) -> dict:
    from cmat.budgets.limits import status_report
    from cmat.claude.install import note_enforcement

    return note_enforcement(status_report(project, ledger, clock.now()), project)


def suggestions(ledger, models, query: dict) -> dict:
    from cmat.insight.optimize import optimize
    from cmat.periods import local_zone, recent_window

    start, end = recent_window(query.get("period") or "30d", query.get("since"),
                               query.get("until"), local_zone(), clock.now())
    return optimize(ledger, models, start, end)


def task_titles(project: Path) -> dict[str, str]:
    """Task id -> title, from the project's queue (none when it has no queue, or a broken
    one: the page then shows ids)."""
    from cmat.errors import CmatError
    from cmat.tasks.queue import QueueService

    try:
        return {task["id"]: str(task.get("title") or "") for task in QueueService(project).tasks()
                if isinstance(task.get("id"), str)}
    except CmatError:
        return {}


def active_blocks(ledger) -> dict:
    from cmat.blocks import active_block, block_json
    from cmat.periods import iso_utc

    now = clock.now()
    block = active_block(ledger, now)
    # `now`: the server's moment, which the page measures the block's progress against.
    return {"blocks": [block_json(block, now, None)] if block else [], "now": iso_utc(now)}


def snapshot(ledger, models, project: Path, query) -> dict:
    """Every answer the page reads, for a `ReportQuery`'s range, zone and project (the
    period and grouping of each chart are the page's own): what `report --html` embeds."""
    import dataclasses

    from cmat.insight.optimize import optimize
    from cmat.periods import iso_utc, midnight

    def report(period: str, by: str) -> dict:
        from cmat.reports import build_report

        return build_report(ledger, dataclasses.replace(query, period=period, by=(by,)))

    from datetime import timedelta

    # Every figure on the page is for the range asked: savings over it too, not the last 30
    # days; without a range, the page's own last 30 days.
    start = midnight(query.since, query.tz).timestamp() if query.since else \
        clock.now() - 30 * 86400
    end = midnight(query.until + timedelta(days=1), query.tz).timestamp() if query.until \
        else None
    ranged = query.since is not None or query.until is not None
    return {"daily": report("daily", "model"), "projects": report("monthly", "project"),
            "enhancements": report("monthly", "enhancement"), "tasks": report("monthly", "task"),
            "apps": report("monthly", "app"), "providers": report("monthly", "provider"),
            "budgets": budgets(ledger, project), "alerts": ledger.alerts(),
            "suggestions": optimize(ledger, models, start, end, query.project),
            "blocks": active_blocks(ledger), "titles": task_titles(project),
            "generated_at": iso_utc(clock.now()),
            "range": {"since": query.since and query.since.isoformat(),
                      "until": query.until and query.until.isoformat()} if ranged else None}


class NoSuchAPI(Exception):
    pass


class Dashboard:
    """The WSGI app: the page, its files and the API."""

    def __init__(self, project: Path, scan: bool = True):
        from cmat.catalog import ModelService

        self.project = project
        self.models = ModelService(project)
        self.scan = scan
        self.scanned_at = 0.0
        self.lock = threading.Lock()

    def ledger(self):
        from cmat.ledger import Ledger

        ledger = Ledger()
        with self.lock:
            if self.scan and time.monotonic() - self.scanned_at > SCAN_INTERVAL_SECONDS:
                from cmat import paths
                from cmat.ingest import scan

                scan(ledger, self.models, paths.transcript_roots([]))
                self.scanned_at = time.monotonic()
        return ledger

    def answer(self, path: str, query: dict) -> object:
        answers = {"/api/v1/usage": lambda ledger: usage(ledger, query),
                   "/api/v1/budgets": lambda ledger: budgets(ledger, self.project),
                   "/api/v1/alerts": lambda ledger: ledger.alerts(),
                   "/api/v1/suggestions": lambda ledger: suggestions(ledger, self.models, query),
                   "/api/v1/blocks": active_blocks,
                   "/api/v1/titles": lambda ledger: task_titles(self.project)}
        if path not in answers:
            raise NoSuchAPI(path)
        with self.ledger() as ledger:
            return answers[path](ledger)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING") or "").items()}
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _send(start_response, "405 Method Not Allowed", {"error": "read-only"})
        if path.startswith("/api/"):
            try:
                return _send(start_response, "200 OK", self.answer(path, query))
            except NoSuchAPI:
                return _send(start_response, "404 Not Found", {"error": f"no such API: {path}"})
            except (UsageError, ValueError, LookupError, OverflowError) as exc:
                # A query value no answer can be made of (a bad period, day or zone).
                return _send(start_response, "400 Bad Request", {"error": str(exc)})
            except CmatError as exc:  # the ledger, not the question (busy, damaged)
                return _send(start_response, "503 Service Unavailable", {"error": str(exc)})
        return _static(start_response, "index.html" if path == "/" else path.lstrip("/"))


def _send(start_response, status: str, body) -> list[bytes]:
    data = orjson.dumps(body)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))), ("Cache-Control", "no-store")])
    return [data]


def _static(start_response, name: str) -> list[bytes]:
    target = (STATIC / name).resolve()
    if STATIC.resolve() not in target.parents or not target.is_file():
        return _send(start_response, "404 Not Found", {"error": f"no such file: /{name}"})
    data = target.read_bytes()
    start_response("200 OK", [("Content-Type", CONTENT_TYPES.get(target.suffix,
                                                                 "application/octet-stream")),
                              ("Content-Length", str(len(data)))])
    return [data]


def page_with_data(data: dict) -> str:
    """The page as one self-contained file: scripts inlined, the API's answers embedded
    (`cmat report ... --html`)."""
    page = (STATIC / "index.html").read_text()
    inline = {name: (STATIC / name).read_text() for name in
              ("vendor/chart.umd.min.js", "app.js")}
    # No "<" at all inside the script (JSON reads \u003c as "<"): a project or a title from
    # outside holding "</script>" or "<!--<script>" would end the script or change how the
    # page around it is parsed, and one holding the stylesheet's tag would be replaced below.
    embedded = orjson.dumps(data).decode().replace("<", "\\u003c")
    page = page.replace('<script src="vendor/chart.umd.min.js"></script>',
                        f"<script>{inline['vendor/chart.umd.min.js']}</script>")
    page = page.replace('<script src="app.js"></script>',
                        f"<script>window.CMAT_DATA = {embedded};</script>\n"
                        f"<script>{inline['app.js']}</script>")
    css = (STATIC / "style.css").read_text()
    return page.replace('<link rel="stylesheet" href="style.css">', f"<style>{css}</style>")


def serve(project: Path, host: str, port: int, open_browser: bool, scan: bool) -> None:
    from cmat.web import serve as serve_app

    def ready(url: str) -> None:
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    serve_app(Dashboard(project, scan), host, port,
              lambda bound: f"cmat dashboard on http://{host}:{bound}/ (Ctrl-C stops it)", ready)
