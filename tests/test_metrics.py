"""Prometheus metrics from the ledger."""

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from cmat.attribution import extract
from cmat.metrics import exposition
from cmat.tasks.queue import QueueService
from tests.helpers import REPO, child_env, cli_run, user_config


def parse(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, name=None):
    return [s for s in family.samples if name is None or s.name == name]


def test_metrics_agree_with_the_ledger(real_history, project):
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


def test_metric_labels_are_capped_with_the_rest_as_other(real_history, project):
    families = parse(exposition(project, max_series=1).decode())
    projects = {s.labels["project"] for s in samples(families["cmat_cost_usd"],
                                                     "cmat_cost_usd_total")}
    assert "other" in projects and len(projects) == 2


def test_compaction_renames_no_series(real_history, project):
    """The costliest names are ranked on the totals they label, compacted history included:
    folding requests into rollups moves no cost from a named series to "other" (a counter
    that went down would read as a reset)."""
    def series():
        families = parse(exposition(project, max_series=1).decode())
        return {tuple(sorted(s.labels.items())): s.value for s in samples(
            families["cmat_cost_usd"], "cmat_cost_usd_total")}

    before = series()
    assert len({dict(labels)["project"] for labels in before}) == 2  # one named, and "other"
    cli_run("ledger", "compact", "--older-than", "1m")  # the whole history, from 2025
    assert series() == pytest.approx(before)


def test_task_and_budget_metrics(real_history, project, tmp_path):
    task = QueueService(project).add("m", enhancement="feat")["id"]
    extract(project, task, next(real_history.rglob("*b25638d7*.jsonl")))
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


def test_metrics_endpoint_over_http(real_history, project):
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
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                         headers={"Host": "rebound.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 421  # a page elsewhere cannot read the spend
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_example_dashboard_uses_only_metrics_cmat_emits(real_history, project):
    user_config("[budgets]\nmonthly = 10\n")
    families = parse(cli_run("metrics").output)
    emitted = set(families) | {sample.name for family in families.values()
                               for sample in family.samples}
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"cmat_[a-z_]+", target["expr"])}
    assert used and used <= emitted, used - emitted
