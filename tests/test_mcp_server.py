"""The MCP server, through the official client."""

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cmat.attribution import extract
from cmat.tasks.queue import QueueService
from tests.helpers import (
    child_env,
    user_config,
)
from tests.transcript_factory import reference_cost


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


def test_mcp_tools_answer_with_structured_json(real_history, project, monkeypatch):
    pytest.importorskip("mcp")

    task = QueueService(project).add("m", enhancement="feat")["id"]
    extract(project, task, next(real_history.rglob("*b25638d7*.jsonl")))
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
    _, session_usd = reference_cost(next(real_history.rglob("*b25638d7*.jsonl")))
    assert task_cost["task_id"] == task
    assert task_cost["total_usd"] == pytest.approx(session_usd)
    assert enhancement["tasks"][0]["task_id"] == task
    assert enhancement["total_usd"] == pytest.approx(session_usd)
    expected: dict[str, float] = {}  # each month's spend, by the naive re-implementation
    for path in real_history.rglob("*.jsonl"):
        month = re.search(r'"timestamp": ?"(\d{4}-\d\d)', path.read_text()).group(1)
        expected[month] = expected.get(month, 0.0) + reference_cost(path)[1]
    reported: dict[str, float] = {}
    for row in report["rows"]:
        reported[row["month"]] = reported.get(row["month"], 0.0) + row["total_usd"]
    assert reported == pytest.approx(expected)
    assert {row["model"] for row in report["rows"] if row["month"] == "2025-09"} >= {
        "claude-opus-4-1-20250805", "claude-sonnet-4-20250514"}
    monthly = budgets["budgets"][0]
    assert monthly["budget"] == "monthly" and monthly["limit"] == 10


def test_mcp_unknown_ids_are_tool_errors_not_crashes(real_history, project, monkeypatch):
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


def test_run_by_hand_at_a_terminal_it_says_it_waits_for_a_client(project):
    import os
    import pty
    import threading

    leader, terminal = pty.openpty()
    server = subprocess.Popen([sys.executable, "-m", "cmat", "mcp"], stdin=terminal,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    deadline = threading.Timer(30, server.kill)  # a server that says nothing fails the test
    deadline.start()
    try:
        said = server.stderr.readline()
    finally:
        deadline.cancel()
        server.kill()
        server.wait(timeout=20)
        os.close(leader)
        os.close(terminal)
    assert b"waiting for an MCP client on stdin" in said and b"Ctrl-C quits" in said


def test_without_the_mcp_extra_the_commands_say_how_to_install_it(project):
    blocked = ("import sys; sys.modules['mcp'] = None; sys.argv = ['cmat'] + sys.argv[1:];"
               " from cmat.entry import main; main()")
    for args in (["mcp"], ["hooks", "install", "--mcp"]):
        result = subprocess.run([sys.executable, "-c", blocked, *args], capture_output=True,
                                stdin=subprocess.DEVNULL, timeout=60, env=child_env(),
                                cwd=project)
        assert result.returncode == 2, result.stderr
        assert b"needs the mcp package" in result.stderr and b"pip install" in result.stderr
    assert not (project / ".mcp.json").exists()
    assert not (project / ".claude" / "settings.json").exists()  # nothing half done
