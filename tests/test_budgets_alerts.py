"""Alerts at thresholds and their delivery to a webhook or a command."""

import http.server
import json
import os
import re
import subprocess
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmat import paths
from cmat.budgets.alerts import redact_url
from cmat.budgets.config import MESSAGE_FIELDS, load_config, render_message
from cmat.claude.log import HookLog
from cmat.ledger import Ledger
from tests.helpers import (
    PRE_TOOL,
    PROMPT,
    budget_hook,
    budget_payload,
    child_env,
    cli_run,
    session_costing,
    user_config,
)


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        _Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_80_percent_alert_appears_once(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "warm", 0.85)
    first = budget_hook(PROMPT, project, budget_payload(path, "warm"))
    assert "decision" not in first
    assert first["systemMessage"].startswith("cmat warning: Daily budget at 85%")
    assert budget_hook(PROMPT, project, budget_payload(path, "warm")) is None  # fired once
    assert budget_hook(PRE_TOOL, project, budget_payload(path, "warm", "PreToolUse")) is None
    fired = json.loads(cli_run("alerts", "list", "--json").output)
    assert sorted(a["threshold"] for a in fired) == [50, 80]
    # No channel is configured: nothing was delivered, and the list does not say "yes".
    assert [a["channels"] for a in fired] == [0, 0]
    lines = cli_run("alerts", "list").output.splitlines()
    rows = lines[2:4]
    assert len(rows) == 2 and all(row.endswith(" -") for row in rows)
    assert lines[4] == "" and lines[5].startswith("Times in ") and len(lines) == 6


def test_concurrent_hooks_fire_each_alert_once(project, tmp_path):
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "many", 0.97)
    env = child_env(CLAUDE_PROJECT_DIR=project, CMAT_PYTHON=os.sys.executable)
    processes = [subprocess.Popen([str(PRE_TOOL)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  env=env) for _ in range(8)]
    outputs = [p.communicate(json.dumps(budget_payload(path, "many", "PreToolUse")).encode(),
                             timeout=60)[0] for p in processes]
    messages = [json.loads(o)["systemMessage"] for o in outputs if o.strip()]
    assert len(messages) == 1 and "critical" in messages[0]
    with Ledger() as ledger:
        assert ledger.query("SELECT count(*) FROM alerts") == [(3,)]


def test_webhook_delivery_and_retry_when_the_server_is_down(project, tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    port = server.server_address[1]
    server.server_close()  # down for now: nothing listens on the port
    user_config(
        f"[budgets]\ndaily = 1\n[alerts]\nwebhook = 'http://127.0.0.1:{port}/hook'\n")
    _, path = session_costing(tmp_path, "hooked", 0.6)
    started = time.monotonic()
    answer = budget_hook(PROMPT, project, budget_payload(path, "hooked"))
    assert time.monotonic() - started < 10 and "decision" not in answer  # never blocks
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the detached delivery tried and failed
        with Ledger() as ledger:
            row = ledger.query("SELECT attempts, delivered, last_error FROM alerts")[0]
        if row[0]:
            break
        time.sleep(0.1)
    assert row[0] == 1 and row[1] == 0 and row[2]
    log = paths.hook_log_file()
    while "not delivered" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the delivery process logs once it has recorded the failure
    assert "not delivered" in log.read_text()
    # The server comes up; a later delivery (due once the retry delay passes) succeeds.
    server = http.server.HTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with Ledger() as ledger, ledger.transaction():
            ledger.db.execute("UPDATE alert_deliveries SET next_attempt = 0")
        cli_run("alerts", "deliver")
    finally:
        server.shutdown()
    assert _Receiver.received and "Daily budget at 60%" in _Receiver.received[-1]["text"]
    assert json.loads(cli_run("alerts", "list", "--json").output)[0]["delivered"] == 1


def test_alert_command_receives_the_message(project, tmp_path):
    out = tmp_path / "alert.txt"
    user_config(
        f"[budgets]\ndaily = 1\n[alerts]\ncommand = ['tee', '{out}']\n")
    _, path = session_costing(tmp_path, "cmd", 0.55)
    budget_hook(PROMPT, project, budget_payload(path, "cmd"))
    deadline = time.monotonic() + 20
    while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Daily budget at 55%" in out.read_text()


def test_a_cloned_repository_cannot_run_a_command_or_post_anywhere(project, tmp_path):
    marker = tmp_path / "pwned"
    (project / ".claude" / "cmat.toml").write_text(
        "[budgets.session]\ndefault = 1\n"
        f"[alerts]\ncommand = 'touch {marker}'\nwebhook = 'http://127.0.0.1:9/steal'\n")
    _, path = session_costing(tmp_path, "cloned", 0.6)
    answer = budget_hook(PROMPT, project, budget_payload(path, "cloned"))
    assert "Session cloned budget" in answer["systemMessage"]  # its stricter budget applies
    time.sleep(1.5)  # a detached delivery, had one started, would have run by now
    assert not marker.exists()
    with Ledger() as ledger:
        assert ledger.query("SELECT delivered FROM alerts") == [(1,)]  # nothing to deliver
    log = paths.hook_log_file().read_text()
    assert "alerts.command ignored" in log and "alerts.webhook ignored" in log


def test_webhook_urls_are_redacted_where_they_are_shown(project, tmp_path):
    assert redact_url("https://hooks.slack.com/services/T0/B1/secret") == \
        "https://hooks.slack.com/services/T0/***"
    assert redact_url("https://user:pw@example.com:8443/hook?token=abc") == \
        "https://example.com:8443/***"
    user_config("[budgets]\ndaily = 1\n[alerts]\n"
                "webhook = 'http://127.0.0.1:9/services/T0/B1/secret'\n")
    shown = cli_run("budget", "show").output + cli_run("budget", "show", "--json").output
    assert "secret" not in shown and "services/T0/***" in shown
    _, path = session_costing(tmp_path, "leak", 0.6)
    budget_hook(PROMPT, project, budget_payload(path, "leak"))
    with Ledger() as ledger, ledger.transaction():
        ledger.db.execute("UPDATE alert_deliveries SET next_attempt = 0, attempts = 0")
    cli_run("alerts", "deliver", code=1)
    errors = json.dumps(json.loads(cli_run("alerts", "list", "--json").output))
    assert "secret" not in errors
    assert "secret" not in paths.hook_log_file().read_text()


# --- email, against a real SMTP server --------------------------------------------------------


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _smtp_server(port, tmp_path=None, password=None):
    """A real SMTP server on 127.0.0.1:`port`; with `tmp_path`, it requires STARTTLS (a
    certificate made here) and a login with `password`."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    mailbox = _Mailbox()
    options = {}
    if tmp_path is not None:
        import ssl

        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                       capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

        def check_login(server, session, envelope, mechanism, auth_data):
            return AuthResult(success=auth_data.login == b"me"
                              and auth_data.password == password.encode())

        options = dict(tls_context=context, require_starttls=True, authenticator=check_login,
                       auth_require_tls=True)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, mailbox


def _deliveries(columns: str) -> list[tuple]:
    with Ledger() as ledger:
        return ledger.query(f"SELECT {columns} FROM alert_deliveries")


def _wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_email_alerts_arrive_over_starttls_each_channel_at_its_thresholds(project, tmp_path):
    port = _free_port()
    controller, mailbox = _smtp_server(port, tmp_path, password="s3cret")
    try:
        user_config(
            "[budgets]\ndaily = 1\n[alerts]\nwebhook = 'http://127.0.0.1:9/hook'\n"
            "webhook_thresholds = [100]\n[alerts.messages]\n"
            "80 = '{percent}% of {budget} used ({spent} of {limit})'\n"
            f"[alerts.email]\nhost = '127.0.0.1'\nport = {port}\nfrom = 'cmat@example.com'\n"
            f"to = ['me@example.com', 'lead@example.com']\nusername = 'me'\n"
            f"cafile = '{tmp_path / 'cert.pem'}'\nthresholds = [80]\n")
        _, path = session_costing(tmp_path, "mailed", 0.85)
        answer = budget_hook(PROMPT, project, budget_payload(path, "mailed"),
                             CMAT_SMTP_PASSWORD="s3cret")
        assert answer["systemMessage"] == "85% of daily budget used ($0.85 of $1.00)"
        assert _wait_for(lambda: mailbox.messages), "no email arrived"
        # The webhook takes 100 % only: it was never asked at 80 %. The server stays up until
        # the sender has recorded the delivery (the message arrives before its QUIT).
        assert _wait_for(lambda: _deliveries("threshold, channel, delivered") == [
            (80, "email", 1)]), _deliveries("threshold, channel, delivered, last_error")
    finally:
        controller.stop()
    mail = mailbox.messages[0]
    assert "Subject: cmat warning: daily at 80%" in mail
    assert "To: me@example.com, lead@example.com" in mail
    assert "85% of daily budget used ($0.85 of $1.00)" in mail


def test_a_down_smtp_server_is_retried_and_never_delays_a_hook(project, tmp_path):
    port = _free_port()
    user_config(f"[budgets]\ndaily = 1\n[alerts]\nthresholds = [50]\n[alerts.email]\n"
                f"host = '127.0.0.1'\nport = {port}\nstarttls = false\nfrom = 'cmat@x.org'\n"
                f"to = 'me@x.org'\n")
    _, path = session_costing(tmp_path, "unsent", 0.6)
    started = time.monotonic()
    answer = budget_hook(PROMPT, project, budget_payload(path, "unsent"))
    assert time.monotonic() - started < 10 and "decision" not in answer

    def attempted():
        with Ledger() as ledger:
            return ledger.query("SELECT attempts, delivered, last_error FROM"
                                " alert_deliveries")[0]

    assert _wait_for(lambda: attempted()[0] == 1)
    assert attempted()[1] == 0 and "Connection refused" in attempted()[2]
    listed = cli_run("alerts", "list").output
    assert "no (1 try)" in listed
    assert "Not delivered: email: " in listed and "Connection refused" in listed
    controller, mailbox = _smtp_server(port)
    try:
        with Ledger() as ledger, ledger.transaction():
            ledger.db.execute("UPDATE alert_deliveries SET next_attempt = 0")
        assert "Delivered 1, failed 0" in cli_run("alerts", "deliver").output
    finally:
        controller.stop()
    assert "Daily budget at 60%" in mailbox.messages[0]
    assert json.loads(cli_run("alerts", "list", "--json").output)[0]["delivered"] == 1


def test_email_settings_come_from_the_users_config_alone(project):
    from cmat.budgets.config import load_config

    (project / ".claude" / "cmat.toml").write_text(
        "[alerts.email]\nhost = 'evil.example'\nfrom = 'a@b.c'\nto = 'a@b.c'\n")
    config = load_config(project)
    assert config.email is None and any("alerts.email ignored" in n for n in config.ignored)
    user_config("[alerts.email]\nhost = 'h'\nfrom = 'a@b.c'\nto = 'a@b.c'\npassword = 'x'\n")
    result = cli_run("budget", "show", code=10)
    assert "unknown email setting 'alerts.email.password'" in result.stderr


def test_the_smtp_password_comes_from_the_environment_or_the_keyring(monkeypatch, tmp_path):
    import keyring
    import pytest

    from cmat.budgets.alerts import _smtp_password
    from cmat.budgets.config import EmailSettings
    from tests.keyring_backend import FileKeyring

    settings = EmailSettings("h", 587, "a@b.c", ("a@b.c",), username="me")
    monkeypatch.delenv("CMAT_SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("CMAT_TEST_KEYRING", str(tmp_path / "keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    try:
        with pytest.raises(OSError, match="no SMTP password: set CMAT_SMTP_PASSWORD"):
            _smtp_password(settings)
        keyring.set_password("cmat", "me", "from-keyring")
        assert _smtp_password(settings) == "from-keyring"
        monkeypatch.setenv("CMAT_SMTP_PASSWORD", "from-env")
        assert _smtp_password(settings) == "from-env"
    finally:
        keyring.set_keyring(previous)


# --- templates and names from outside never break an alert or a check ------------------------


@pytest.mark.parametrize("template", ["{percent:d} used", "{budget.__class__.__mro__}",
                                      "{budget[0]}", "{spent:{limit}}", "{nope}", "{0}"])
def test_a_template_that_would_fail_when_sent_is_refused_at_load(project, template):
    user_config(f"[budgets]\ndaily = 1\n[alerts.messages]\n80 = '{template}'\n")
    result = cli_run("budget", "show", code=10)
    assert "alerts.messages.80" in result.stderr
    (project / ".claude" / "cmat.toml").write_text(f"[alerts.messages]\n80 = '{template}'\n")
    user_config("[budgets]\ndaily = 1\n")
    assert any("alerts.messages.80" in note for note in load_config(project).ignored)


PIECES = ["{", "}", "percent", "threshold", "budget", "spent", "reset", ":d", ":>6", ":.1f",
          ":,", "!r", "!s", ".__class__", "[0]", "x", " ", "%", ":{limit}", "{{", "}}"]


@settings(max_examples=400)
@given(template=st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_a_template_accepted_at_load_renders_for_any_real_alert(template):
    try:
        render_message(template, MESSAGE_FIELDS)
    except (KeyError, IndexError, ValueError, TypeError):
        return  # refused at load: never reaches an alert
    real = {"percent": "100", "threshold": 95, "budget": "enhancement\r\nx budget",
            "spent": "$1,234.56", "limit": "<$0.01", "remaining": "$0.00",
            "level": "exhausted", "reset": ""}
    assert isinstance(render_message(template, real), str)


def test_control_characters_never_start_a_log_line(tmp_path):
    log = HookLog(path=tmp_path / "hook.log")
    log.write("WARN", "session-end", "enhancement e\r\n2026-12-01T00:00:00 ERROR forged\x00")
    lines = (tmp_path / "hook.log").read_bytes().split(b"\n")
    assert len(lines) == 2 and lines[1] == b""
    assert b"\\r\\n2026-12-01T00:00:00 ERROR forged\\x00" in lines[0]


def test_an_enhancement_named_with_crlf_is_alerted_once_by_email(project, tmp_path):
    port = _free_port()
    controller, mailbox = _smtp_server(port)
    name = "e1\r\nBcc: everyone@example.com"
    try:
        user_config(
            f'[budgets.enhancement]\n"e1\\r\\nBcc: everyone@example.com" = 1\n'
            f"[alerts.email]\nhost = '127.0.0.1'\nport = {port}\nfrom = 'cmat@example.com'\n"
            f"to = ['me@example.com']\nstarttls = false\nthresholds = [80]\n")
        _, path = session_costing(tmp_path, "crlf", 0.85)
        budget_hook(PROMPT, project, budget_payload(path, "crlf"), CMAT_CURRENT_TASK_ID="t1",
                    CMAT_ENHANCEMENT=name)
        assert _wait_for(lambda: mailbox.messages), "no email arrived"
        assert _wait_for(lambda: _deliveries("delivered") == [(1,)])  # before the server goes
    finally:
        controller.stop()
    (mail,) = mailbox.messages
    headers = re.split(r"\r?\n\r?\n", mail, maxsplit=1)[0]
    assert "everyone" not in headers.replace("\\r\\nBcc: everyone", "")
    assert _deliveries("delivered, attempts") == [(1, 1)]  # delivered once, never resent


def test_crossing_several_thresholds_at_once_sends_only_the_highest(project, tmp_path):
    out = tmp_path / "alerts.txt"
    user_config(f"[budgets]\ndaily = 1\n[alerts]\ncommand = ['sh', '-c', 'cat >> {out}; echo >> {out}']\n")
    _, path = session_costing(tmp_path, "jump", 0.97)
    budget_hook(PROMPT, project, budget_payload(path, "jump"))
    assert _wait_for(lambda: out.exists() and out.read_text().strip())
    time.sleep(1)  # time for any further delivery to arrive (none should)
    sent = [line for line in out.read_text().splitlines() if line.strip()]
    assert len(sent) == 1 and "critical" in sent[0] and "97%" in sent[0]
    with Ledger() as ledger:
        assert ledger.query("SELECT threshold FROM alerts ORDER BY 1") == [(50,), (80,), (95,)]
        assert ledger.query("SELECT threshold FROM alert_deliveries") == [(95,)]
