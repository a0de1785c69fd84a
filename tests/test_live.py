"""Status line, Prometheus metrics and the MCP server."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmat.cli import cli
from cmat.queue import QueueService
from tests.conftest import REPO, child_env, real_fixture, user_config
from tests.test_budgets import now_iso, session_costing
from tests.transcript_factory import TranscriptBuilder, write_session

STATUSLINE = REPO / "hooks" / "cmat-statusline.sh"


def cli_run(*args, code=0, input=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                                catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


def statusline(project, payload, *args, **env):
    result = subprocess.run([str(STATUSLINE), *args], input=json.dumps(payload).encode(),
                            capture_output=True, timeout=60,
                            env=child_env(CLAUDE_PROJECT_DIR=project,
                                          CMAT_PYTHON=sys.executable, **env))
    assert result.returncode == 0 and result.stderr == b""
    return result.stdout.decode().rstrip("\n")


def status_payload(path, session_id, claude_cost=None):
    data = {"session_id": session_id, "transcript_path": str(path), "cwd": "/x",
            "model": {"id": "claude-opus-4-6", "display_name": "Opus"},
            "workspace": {"current_dir": "/x"}}
    if claude_cost is not None:
        data["cost"] = {"total_cost_usd": claude_cost}
    return data


# --- status line ---------------------------------------------------------------------------


def test_statusline_with_no_task_and_no_budget(project, tmp_path):
    builder, path = session_costing(tmp_path, "s1", 0.25)
    line = statusline(project, status_payload(path, "s1"))
    assert line == f"cmat ${builder.expected_cost:,.2f} session · ${builder.expected_cost:,.2f} today"


def test_statusline_with_a_task(project, tmp_path):
    task = QueueService(project).add("x")["id"]
    QueueService(project).start(task)
    builder, path = session_costing(tmp_path, "s1", 0.5)
    line = statusline(project, status_payload(path, "s1"))
    assert f"{task} ${builder.expected_cost:,.2f}" in line


def test_statusline_over_budget_is_coloured_unless_no_color(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "s1", 1.2)
    line = statusline(project, status_payload(path, "s1"))
    assert "\033[1;31mdaily 120%\033[0m" in line
    plain = statusline(project, status_payload(path, "s1"), NO_COLOR="1")
    assert "\033[" not in plain and plain.endswith("daily 120%")


def test_statusline_at_the_warning_threshold(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "s1", 0.85)
    assert "\033[33mdaily 85%" in statusline(project, status_payload(path, "s1"))


def test_statusline_marks_an_unpriced_model(project, tmp_path):
    builder = TranscriptBuilder(session_id="s1")
    builder.now = now_iso(-10)
    builder.response(model="claude-nova-9")
    path = write_session(tmp_path, builder)
    assert statusline(project, status_payload(path, "s1")).startswith("cmat $0.00+? session")


def test_statusline_with_an_empty_history(project, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert statusline(project, status_payload(path, "none")) == \
        "cmat $0.00 session · $0.00 today"


def test_statusline_debug_names_a_disagreement_with_claude_code(project, tmp_path):
    builder, path = session_costing(tmp_path, "s1", 1.0)
    agree = statusline(project, status_payload(path, "s1", builder.expected_cost * 1.01),
                       "--debug")
    assert "Claude Code says" not in agree
    differ = statusline(project, status_payload(path, "s1", builder.expected_cost * 1.5),
                        "--debug")
    assert "Claude Code says $1.50 (+50% vs cmat)" in differ


def test_statusline_never_fails(project):
    result = subprocess.run([str(STATUSLINE)], input=b"not json", capture_output=True,
                            env=child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=sys.executable))
    assert result.returncode == 0 and result.stdout == b"cmat: cost unavailable\n"


# --- metrics ---------------------------------------------------------------------------------


@pytest.fixture
def history(tmp_path, monkeypatch, project):
    config = tmp_path / "claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    for index, name in enumerate(("b25638d7", "1af7fc5e", "5c0375b4")):
        source = real_fixture(name)
        target = config / "projects" / f"-p{index}" / source.name
        target.parent.mkdir(parents=True)
        target.write_bytes(source.read_bytes())
    return config


def parse(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, name=None):
    return [s for s in family.samples if name is None or s.name == name]


def test_metrics_agree_with_the_ledger(history, project):
    text = cli_run("metrics").output
    families = parse(text)
    report = json.loads(cli_run("report", "daily", "--json", "--no-scan").output)
    total = report["total"]
    cost = sum(s.value for s in samples(families["cmat_cost_usd"], "cmat_cost_usd_total"))
    assert cost == pytest.approx(total["total_usd"])
    requests = sum(s.value for s in samples(families["cmat_requests"], "cmat_requests_total"))
    assert requests == total["requests"]
    output = sum(s.value for s in samples(families["cmat_tokens"], "cmat_tokens_total")
                 if s.labels["type"] == "output")
    assert output == total["tokens"]["output"]
    histogram = {s.labels.get("le"): s.value for s in samples(families["cmat_request_cost_usd"])
                 if s.name.endswith("_bucket")}
    assert list(histogram) == ["0.01", "0.1", "1.0", "5.0", "+Inf"]
    assert histogram["+Inf"] == total["requests"]
    assert all(a <= b for a, b in zip(histogram.values(), list(histogram.values())[1:]))
    assert "cmat_last_scan_timestamp_seconds" in families


def test_metric_labels_are_capped_with_the_rest_as_other(history, project, monkeypatch):
    from cmat import metrics

    monkeypatch.setattr(metrics, "MAX_SERIES", 1)
    families = parse(metrics.exposition(project).decode())
    projects = {s.labels["project"] for s in samples(families["cmat_cost_usd"],
                                                     "cmat_cost_usd_total")}
    assert "other" in projects and len(projects) == 2


def test_task_and_budget_metrics(history, project, tmp_path):
    from cmat.costs import extract

    task = QueueService(project).add("m", enhancement="feat")["id"]
    extract(project, task, next(history.rglob("*b25638d7*.jsonl")))
    user_config("[budgets]\nmonthly = 10\n")
    families = parse(cli_run("metrics").output)
    assert [(s.labels["task"], s.labels["enhancement"]) for s in
            samples(families["cmat_task_cost_usd"])] == [(task, "feat")]
    assert samples(families["cmat_budget_limit_usd"])[0].value == 10
    assert samples(families["cmat_budget_spent_ratio"])[0].labels == {"budget": "monthly"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_metrics_endpoint_over_http(history, project):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "cmat", "metrics", "serve", "--port",
                               str(port)], env=child_env(), stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    assert r.status == 200
                    body = r.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "metrics server did not start"
                time.sleep(0.1)
        assert "cmat_cost_usd_total" in parse(body)["cmat_cost_usd"].samples[0].name
        # A client that connects and sends nothing stalls no one else.
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.sendall(b"GET /metr")
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                assert r.status == 200
            assert time.monotonic() - started < 5
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- MCP server ---------------------------------------------------------------------------------


def call_tools(calls):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def run():
        params = StdioServerParameters(command=sys.executable, args=["-m", "cmat", "mcp"],
                                       env=child_env())
        async with Client(params) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            results = [await client.call_tool(name, arguments) for name, arguments in calls]
            return names, results

    return asyncio.run(run())


def test_mcp_tools_answer_with_structured_json(history, project, monkeypatch):
    pytest.importorskip("mcp")
    from cmat.costs import extract

    task = QueueService(project).add("m", enhancement="feat")["id"]
    extract(project, task, next(history.rglob("*b25638d7*.jsonl")))
    user_config("[budgets]\nmonthly = 10\n")
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    names, results = call_tools([
        ("get_task_cost", {"task_id": task}),
        ("get_enhancement_cost", {"name": "feat"}),
        ("get_cost_report", {"period": "monthly", "group_by": ["model"]}),
        ("get_budget_status", {}),
    ])
    assert names == ["get_task_cost", "get_enhancement_cost", "get_cost_report",
                     "get_budget_status"]
    assert not any(r.is_error for r in results)
    task_cost, enhancement, report, budgets = (r.structured_content for r in results)
    assert task_cost["task_id"] == task and task_cost["total_usd"] > 0
    assert enhancement["tasks"][0]["task_id"] == task
    assert report["rows"][0]["month"] == "2025-09" and report["rows"][0]["model"]
    assert budgets["budgets"][0]["budget"] == "monthly"


def test_mcp_unknown_ids_are_tool_errors_not_crashes(history, project, monkeypatch):
    pytest.importorskip("mcp")
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    _, results = call_tools([
        ("get_task_cost", {"task_id": "task_nope"}),
        ("get_enhancement_cost", {"name": "nothing"}),
        ("get_cost_report", {"period": "hourly"}),
        ("get_budget_status", {}),  # the server still answers after errors
    ])
    assert [r.is_error for r in results] == [True, True, True, False]
    assert "no task 'task_nope'" in results[0].content[0].text
    assert "period must be one of" in results[2].content[0].text


# --- installing them -----------------------------------------------------------------------------


def test_install_statusline_and_mcp_and_remove_them(project):
    settings_file = project / ".claude" / "settings.json"
    cli_run("hooks", "install", "--statusline", "--mcp")
    settings = json.loads(settings_file.read_text())
    assert settings["statusLine"]["command"].endswith('.claude/hooks/cmat/cmat-statusline.sh')
    assert os.access(project / ".claude" / "hooks" / "cmat" / "cmat-statusline.sh", os.X_OK)
    servers = json.loads((project / ".mcp.json").read_text())["mcpServers"]
    assert servers["cmat"]["args"][-1] == "mcp"
    assert json.loads(cli_run("hooks", "status", "--json").output)["mcp"] == servers["cmat"]
    cli_run("hooks", "uninstall")
    assert not settings_file.exists()  # cmat created it, and took it away again
    assert json.loads((project / ".mcp.json").read_text()) == {}
    assert not list(project.rglob("*.lock"))


def test_someone_elses_status_line_is_never_replaced(project):
    settings_file = project / ".claude" / "settings.json"
    settings_file.write_text(json.dumps({"statusLine": {"type": "command", "command": "mine"}}))
    result = cli_run("hooks", "install", "--statusline", code=9)
    assert "already has a status line" in result.stderr
    assert json.loads(settings_file.read_text())["statusLine"]["command"] == "mine"


def test_other_mcp_servers_are_kept(project):
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": {"db": {"command": "x"}}}))
    cli_run("hooks", "install", "--mcp")
    cli_run("hooks", "uninstall")
    assert json.loads((project / ".mcp.json").read_text()) == {"mcpServers": {"db": {"command": "x"}}}


def test_statusline_cache_is_used_while_nothing_changes(project, tmp_path, monkeypatch):
    from cmat import statusline as module
    from tests.transcript_factory import write_subagent

    builder, path = session_costing(tmp_path, "s1", 0.5)
    write_subagent(path.parent, "s1", "ag1", "Explore",
                   lambda b, a: (setattr(b, "now", now_iso(-5)),
                                 b.response(sidechain=True, agent_id=a, output=100)))
    payload = status_payload(path, "s1")
    first = module.cached_line(payload, project, colour=False)
    calls = []
    monkeypatch.setattr(module, "build_line", lambda *a: calls.append(a) or ("fresh", 0.0))
    assert module.cached_line(payload, project, colour=False) == first  # from the cache
    assert calls == []
    builder.response(output=10)
    builder.write(path)  # the session grew: built afresh
    assert module.cached_line(payload, project, colour=False) == ("fresh", 0.0)
    assert len(calls) == 1
    monkeypatch.setattr(module, "CACHE_SECONDS", 0)
    builder.response(output=10)
    builder.write(path)
    module.cached_line(payload, project, colour=False)  # cached, but already expired
    module.cached_line(payload, project, colour=False)
    assert len(calls) == 3  # an expired entry is rebuilt


def test_the_example_dashboard_uses_only_metrics_cmat_emits(history, project):
    import re

    user_config("[budgets]\nmonthly = 10\n")
    families = parse(cli_run("metrics").output)
    emitted = set(families) | {sample.name for family in families.values()
                               for sample in family.samples}
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"cmat_[a-z_]+", target["expr"])}
    assert used and used <= emitted, used - emitted


def test_an_mcp_request_over_64_kib_is_refused_and_the_server_goes_on(project):
    server = subprocess.Popen([sys.executable, "-m", "cmat", "mcp"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=child_env(CLAUDE_PROJECT_DIR=project))
    try:
        huge = b'{"jsonrpc":"2.0","id":0,"method":"ping","params":{"x":"' + b"a" * 50_000_000
        server.stdin.write(huge + b'"}}\n')
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}
        server.stdin.write(json.dumps(initialize).encode() + b"\n")
        server.stdin.flush()
        answer = json.loads(server.stdout.readline())
        assert answer["id"] == 1 and answer["result"]["serverInfo"]["name"] == "cmat"
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak = int(status.split("VmHWM:")[1].split()[0])  # KiB
        assert peak < 300_000  # the 50 MB line was never held
    finally:
        server.stdin.close()
        server.wait(timeout=20)
    assert b"refused a request over 64 KiB" in server.stderr.read()
