"""Fuzz: whatever Claude Code (or anything posing as it) sends a budget hook on stdin, the hook
exits cleanly, and a payload that names an over-budget session is refused whatever else it
carries: hostile input is never the way around a budget."""

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmat.claude import runtime
from cmat.claude.payload import leading_fields
from tests.helpers import session_costing, user_config

FUZZ = settings(max_examples=120,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=30)


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


def _answer(event, data, capsys):
    capsys.readouterr()
    assert runtime.run(event, _Stdin(data)) == 0
    out = capsys.readouterr().out
    return json.loads(out) if out.strip() else None


@pytest.fixture
def spent(project, tmp_path, monkeypatch):
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(project))
    user_config("[budgets]\ndaily = 1\n")
    _, path = session_costing(tmp_path, "over", 1.2)
    return path


@FUZZ
@given(extra=st.dictionaries(st.text(max_size=12).filter(
    lambda k: k not in ("session_id", "transcript_path")), json_values, max_size=5),
    depth=st.integers(min_value=1, max_value=3000))
def test_an_over_budget_tool_call_is_denied_whatever_else_the_payload_holds(
        spent, capsys, extra, depth):
    payload = {"session_id": "over", "transcript_path": str(spent),
               "hook_event_name": "PreToolUse", **extra}
    raw = json.dumps(payload)[:-1] + ', "tool_input": ' + "[" * depth + "]" * depth + "}"
    answer = _answer("pre-tool-use", raw.encode(), capsys)
    assert answer["hookSpecificOutput"]["permissionDecision"] == "deny"


@FUZZ
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_stdin_exits_cleanly_with_an_answer_claude_code_reads(spent, capsys, data):
    answer = _answer("prompt-submit", data, capsys)  # exit 0, stdout empty or one JSON object
    assert answer is None or set(answer) <= {"decision", "reason", "systemMessage"}


@FUZZ
@given(fields=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=6))
def test_leading_fields_reads_every_complete_field_of_any_object(fields):
    raw = json.dumps(fields).encode()
    assert leading_fields(raw) == json.loads(raw)
    for key, value in leading_fields(raw[: len(raw) // 2]).items():
        whole = fields[key]  # the same, or an object cut off: its leading fields
        assert value == whole or isinstance(whole, dict) and all(
            whole[inner] == part for inner, part in value.items())
