"""The dashboard: its API answers what the commands answer, and the page renders in a real
browser (Debian's Chromium, driven by Playwright) with the right totals and no errors."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from cmat import clock
from cmat.dashboard.server import Dashboard
from cmat.ledger import Ledger
from tests.helpers import child_env, cli_run, need, now_iso, user_config
from tests.transcript_factory import (
    CodexRollout,
    TranscriptBuilder,
    write_session,
    write_subagent,
)

MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")


@pytest.fixture
def recent_history(tmp_path, monkeypatch, project):
    """A week of work over three models, two projects, tasks and enhancements, a budget
    nearly spent and an alert fired."""
    from cmat.attribution import extract
    from cmat.tasks.queue import QueueService

    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    queue = QueueService(project)
    for day in range(7):
        for index, model in enumerate(MODELS):
            name = f"d{day}-m{index}"
            builder = TranscriptBuilder(session_id=name, cwd=f"/home/me/{'app' if index else 'lib'}")
            for turn in range(3):
                builder.now = now_iso(-(day * 86400 + 3600 + turn * 400 + index * 60))
                builder.response(model=model, input=2000, output=3000 * (index + 1),
                                 write_5m=20_000, read=60_000 * turn)
            path = write_session(config / "projects" / f"-home-me-{name}", builder)
            if day < 3 and index:
                task = queue.add(f"task {name}", agent="architect", task_type="analysis",
                                 enhancement=("search" if day else "export"))["id"]
                extract(project, task, path)
    spare = TranscriptBuilder(session_id="with-agent", cwd="/home/me/app")
    spare.now = now_iso(-600)
    spare.response(model=MODELS[1], output=500)
    main = write_session(config / "projects" / "-home-me-app", spare)
    write_subagent(main.parent, "with-agent", "sub1", "Explore",
                   lambda b, a: (setattr(b, "now", now_iso(-500)),
                                 b.response(model=MODELS[2], sidechain=True, agent_id=a,
                                            output=800)))
    user_config("[budgets]\nmonthly = 40\ndaily = 5\n")
    cli_run("scan", "-q")
    cli_run("budget", "status")
    with Ledger() as ledger, ledger.transaction():
        ledger.fire_alert("monthly", 0.0, 80, "warning", "cmat warning: Monthly budget at 83% "
                          "($33.20 of $40.00).", 33.2, 40.0, clock.now() - 3600)
    return config


def api(app, path):
    answer = {}

    def start_response(status, headers):
        answer["status"] = status

    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"], _, environ["QUERY_STRING"] = path.partition("?")
    body = b"".join(app(environ, start_response))
    assert answer["status"].startswith("200"), (path, answer, body)
    return json.loads(body)


def test_the_api_answers_what_the_commands_answer(recent_history, project):
    app = Dashboard(project, scan=False)
    cli = {args: json.loads(cli_run(*args.split(), "--json").output) for args in (
        "report daily --by model --no-scan", "report monthly --by project,task --no-scan",
        "budget status --no-scan", "alerts list", "optimize --since 2026-01-01 --no-scan",
        "blocks --active --no-scan")}
    assert api(app, "/api/v1/usage?period=daily&by=model") == cli["report daily --by model --no-scan"]
    assert api(app, "/api/v1/usage?period=monthly&by=project,task") == \
        cli["report monthly --by project,task --no-scan"]
    assert api(app, "/api/v1/budgets") == cli["budget status --no-scan"]
    assert api(app, "/api/v1/alerts") == cli["alerts list"]
    assert api(app, "/api/v1/suggestions?since=2026-01-01") == cli["optimize --since 2026-01-01 --no-scan"]
    blocks, mine = cli["blocks --active --no-scan"]["blocks"], api(app, "/api/v1/blocks")["blocks"]
    assert cli["blocks --active --no-scan"].keys() == api(app, "/api/v1/blocks").keys()
    # The page's block is summed per model over the block, the command's per hour and model
    # (its kept sums): the same cost, added in another order, to the last bit or nearly.
    assert [(b["start"], b["tokens"], pytest.approx(b["cost_usd"], rel=1e-12)) for b in mine] \
        == [(b["start"], b["tokens"], b["cost_usd"]) for b in blocks]


def test_the_api_refuses_what_it_does_not_serve(project):
    app = Dashboard(project, scan=False)
    statuses = []
    environ = {}
    setup_testing_defaults(environ)
    for path, query in (("/api/v1/nope", ""), ("/../../etc/passwd", ""),
                        ("/api/v1/usage", "period=hourly")):
        environ.update(PATH_INFO=path, QUERY_STRING=query)
        b"".join(app(environ, lambda status, headers: statuses.append(status)))
    assert [s.split()[0] for s in statuses] == ["404", "404", "400"]


def chromium():
    path = shutil.which("chromium")
    need(path, "needs Debian's chromium (CI installs it): apt-get install chromium",
         "CMAT_BROWSER_TESTS")
    return path


def open_page(url, screenshot=None):
    """Load `url` in headless Chromium; (what the page shows, console errors)."""
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1500})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: (
                errors.append(f"went online: {route.request.url}"), route.abort()))
            page.goto(url)
            page.wait_for_function("document.body.dataset.ready !== undefined", timeout=30_000)
            shown = page.evaluate("""() => ({
                ready: document.body.dataset.ready, days: +document.body.dataset.days,
                models: +document.body.dataset.models,
                total: document.getElementById('total-all').textContent,
                last30: document.getElementById('total-30d').textContent,
                savings: document.getElementById('savings').textContent,
                savings_detail: document.getElementById('savings-detail').textContent,
                requests: document.getElementById('requests-all').textContent,
                suggestions: document.getElementById('suggestions').textContent,
                title: document.getElementById('title-all').textContent,
                days_text: document.getElementById('days-30d').textContent,
                budgets: document.querySelectorAll('#budgets .budget').length,
                not_enforced: document.querySelector('#budgets p')?.textContent,
                alerts: document.querySelectorAll('#alerts tbody tr').length,
                tasks: [...document.querySelectorAll('#tasks tbody tr')].length,
                charts: [...document.querySelectorAll('canvas')].map(
                    c => Chart.getChart(c) ? Chart.getChart(c).data.datasets.length : 0)})""")
            if screenshot:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return shown, errors


def money(value):
    return f"${value:,.2f}"


def test_the_dashboard_renders_in_chromium_with_the_right_totals(recent_history, project,
                                                                 tmp_path):
    chromium()
    server = subprocess.Popen([sys.executable, "-m", "cmat", "dashboard", "--port", "0",
                               "--no-scan", "--project", str(project)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(CLAUDE_CONFIG_DIR=recent_history))
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        target = os.environ.get("CMAT_DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png"
        shown, errors = open_page(url, screenshot=target)
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = json.loads(cli_run("report", "daily", "--by", "model", "--json",
                                "--no-scan").output)
    assert errors == [] and shown["ready"] == "1"
    assert shown["total"] == money(report["total"]["total_usd"])
    assert shown["title"] == "Last 30 days"  # all of the history is recent
    assert shown["last30"] == money(report["total"]["total_usd"] / 30)  # a day on average
    assert shown["days"] == 30 and shown["models"] == 3  # every day, those without usage too
    # A week's work; the report's count of days, since the fixture's last hour straddles
    # midnight when the suite runs just after it.
    days = {row["date"] for row in report["rows"]}
    assert len(days) in (7, 8)
    assert shown["days_text"] == f"a day on average; {len(days)} of 30 days with usage"
    assert shown["charts"] == [3, 1]  # spend per day (a dataset a model), per project
    assert shown["budgets"] == 2 and shown["alerts"] == 1 and shown["tasks"] >= 4
    assert shown["not_enforced"].startswith("Not enforced here: Claude Code enforces budgets")
    assert shown["savings"].startswith("$")
    assert shown["requests"] == f"{report['total']['requests']:,} requests"
    assert "No usage" not in shown["suggestions"]
    assert target.exists() if hasattr(target, "exists") else True


def test_a_period_without_usage_says_so_and_where_the_rest_is(project, tmp_path):
    chromium()
    server = subprocess.Popen([sys.executable, "-m", "cmat", "dashboard", "--port", "0",
                               "--project", str(project)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(CLAUDE_CONFIG_DIR=tmp_path / "nothing"))
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        shown, errors = open_page(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert errors == [] and shown["ready"] == "1"
    assert shown["requests"] == "0 requests: the Period “All” shows the whole history"
    assert shown["suggestions"] == "No usage in this period."


def test_the_dashboard_is_live_with_a_period_picker_titles_and_the_block(recent_history,
                                                                         project, tmp_path,
                                                                         isolated_home):
    """Served live, the page reads the API again by itself: a session recorded meanwhile
    appears without a reload. The period picker, task titles, the 5-hour block's progress and
    each coding agent's spend are there; at a phone's width nothing runs off the screen
    (screenshots at both widths)."""
    chromium()
    from playwright.sync_api import sync_playwright

    rollout = CodexRollout(start=now_iso(-3600).removesuffix(".000Z"))  # Codex beside it
    rollout.turn("gpt-5.5")
    rollout.request(40_000, cached=30_000, output=2_000)
    rollout.write(isolated_home / ".codex" / "sessions" / "rollout-live.jsonl")

    server = subprocess.Popen([sys.executable, "-m", "cmat", "dashboard", "--port", "0",
                               "--project", str(project)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(CLAUDE_CONFIG_DIR=recent_history))
    shots = Path(os.environ.get("CMAT_DASHBOARD_SHOTS") or tmp_path)
    try:
        url = re.search(r"http://\S+/", server.stdout.readline()).group(0)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium(), args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(url + "?refresh=1")
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
                before = page.text_content("#total-all")
                assert "task d0-m1 (" in page.text_content("#tasks")  # titles, not ids alone
                agents = page.text_content("#apps")
                assert "claude-code" in agents and "codex" in agents
                assert "openai" in page.text_content("#providers")
                assert page.text_content("#block-detail").count("/h") == 1  # burn rate
                width = page.evaluate("getComputedStyle(document.getElementById("
                                      "'block-progress')).width")
                assert float(width.removesuffix("px")) > 0
                page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
                # A session ends meanwhile: the page shows it by itself.
                builder = TranscriptBuilder(session_id="arrives-later", cwd="/home/me/app")
                builder.now = now_iso(-30)
                builder.response(model=MODELS[0], output=400_000)
                write_session(recent_history / "projects" / "-home-me-later", builder)
                page.wait_for_function(
                    f"document.getElementById('total-all').textContent !== '{before}'",
                    timeout=60_000)
                page.select_option("#period", "7d")
                page.wait_for_function("document.getElementById('title-all').textContent"
                                       " === 'Last 7 days'", timeout=30_000)
                assert page.evaluate("document.body.dataset.days") == "7"
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.goto(url)
                phone.wait_for_function("document.body.dataset.ready === '1'",
                                        timeout=30_000)
                assert phone.evaluate("document.documentElement.scrollWidth") <= 390
                phone.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
                assert errors == []
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (shots / "dashboard.png").exists() and (shots / "dashboard-phone.png").exists()


def test_report_html_is_one_file_that_renders_offline(recent_history, project, tmp_path):
    chromium()
    out = tmp_path / "share" / "spend.html"
    out.parent.mkdir()
    result = cli_run("report", "monthly", "--html", out, "--no-scan")
    assert f"Wrote {out}" in result.stderr
    page = out.read_text()
    assert "<script src=" not in page and "window.CMAT_DATA" in page
    shown, errors = open_page(out.as_uri())
    assert errors == [] and shown["ready"] == "1" and shown["models"] == 3
    report = json.loads(cli_run("report", "monthly", "--json", "--no-scan").output)
    assert shown["total"] == money(report["total"]["total_usd"])


def test_report_htmls_data_cannot_end_its_script_or_meet_the_pages_own_tags():
    """A project or title from outside, embedded in the page's data: "</script>", an HTML
    comment's opening or the stylesheet's tag stay text of the data, which reads back whole."""
    from cmat.dashboard.server import page_with_data

    hostile = {"project": "</script><script>alert(1)</script>", "title": "<!--<script>",
               "model": '<link rel="stylesheet" href="style.css">'}
    page = page_with_data(hostile)
    data = re.search(r"window\.CMAT_DATA = (.*?);</script>", page).group(1)
    assert "<" not in data and json.loads(data) == hostile
    assert page.count("<script>") == 3 and page.count("<style>") == 1  # the page's own


def test_report_html_for_a_past_range_shows_that_range_alone(recent_history, project,
                                                            tmp_path):
    chromium()
    since, until = now_iso(-6 * 86400)[:10], now_iso(-4 * 86400)[:10]
    out = tmp_path / "range.html"
    cli_run("report", "daily", "--since", since, "--until", until, "--html", out, "--no-scan")
    shown, errors = open_page(out.as_uri())
    assert errors == [] and shown["ready"] == "1"
    report = json.loads(cli_run("report", "daily", "--since", since, "--until", until,
                                "--json", "--no-scan").output)
    assert shown["total"] == money(report["total"]["total_usd"])
    assert shown["last30"] == money(report["total"]["total_usd"] / 3)  # the same 3 days
    assert shown["title"] == f"{since} to {until}" and shown["days"] == 3
    suggestions = json.loads(cli_run("optimize", "--since", since, "--until", until,
                                     "--json", "--no-scan").output)
    assert shown["savings_detail"] == f"of {money(suggestions['cost_usd'])} {since} to {until}"


# --- a local server answers only local pages (docs/security.md) ----------------------------


@pytest.fixture
def running_dashboard(project):
    """`cmat dashboard` itself, on a free port; yields (port, process)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cmat", "dashboard", "--port", "0", "--no-scan"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    line = process.stdout.readline().decode()
    port = int(re.search(r":(\d+)/", line).group(1))
    yield port, process
    process.terminate()
    process.wait(timeout=10)


def _get(port, path, host=None, timeout=30):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("GET", path, headers={"Host": host} if host else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def test_a_rebound_host_name_gets_nothing(running_dashboard):
    port, _ = running_dashboard
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
        status, body = _get(port, "/api/v1/usage", host)
        assert status == 421 and b"project" not in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert _get(port, "/api/v1/budgets", host)[0] == 200


def test_bad_query_values_are_400_with_a_message(running_dashboard):
    port, _ = running_dashboard
    for query in ("since=yesterday", "until=2026-13-45", "timezone=Mars/Olympus",
                  "period=hourly", "by=nothing"):
        status, body = _get(port, f"/api/v1/usage?{query}")
        assert status == 400, (query, body)
        assert "isoformat" not in body.decode()


def test_200_concurrent_requests_are_all_answered_and_idle_clients_leave_no_trace(
        running_dashboard):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    port, process = running_dashboard
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(lambda _: _get(port, "/api/v1/alerts", timeout=60)[0],
                                 range(200)))
    assert statuses == [200] * 200
    for connection in idle:
        connection.close()
    process.terminate()
    _, stderr = process.communicate(timeout=10)
    assert b"Traceback" not in stderr


def test_a_port_in_use_is_a_clear_message(running_dashboard):
    port, _ = running_dashboard
    result = subprocess.run([sys.executable, "-m", "cmat", "dashboard", "--port", str(port),
                             "--no-scan"], capture_output=True, timeout=30,
                            env=child_env())
    assert result.returncode == 2 and f"port {port}" in result.stderr.decode()
    assert "already in use" in result.stderr.decode()


def test_a_ledger_that_cannot_be_opened_is_the_servers_trouble_not_the_question(
        project, tmp_path, monkeypatch):
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path))  # a folder: no ledger can be opened
    app = Dashboard(project, scan=False)
    answer = {}
    environ = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/api/v1/alerts"
    body = b"".join(app(environ, lambda status, headers: answer.update(status=status)))
    assert answer["status"].startswith("503") and b"ledger" in body
