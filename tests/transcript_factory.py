"""Writes realistic Claude Code transcripts whose exact cost is known.

Expected costs come from PRICES below, typed in from the pricing facts independently of
data/models.json, so a wrong catalog price fails the tests too.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

# input, 5m write, 1h write, cache read, output: USD per MTok
PRICES = {
    "claude-fable-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-mythos-5-1": (10, 12.50, 20, 0.25, 50),
    "claude-fable-5": (10, 12.50, 20, 1, 50),
    "claude-mythos-5": (10, 12.50, 20, 1, 50),
    "claude-opus-5-5": (4, 5, 8, 0.20, 20),
    "claude-opus-5": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-8": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-7": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-6": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-5-20251101": (5, 6.25, 10, 0.50, 25),
    "claude-opus-4-1-20250805": (15, 18.75, 30, 1.50, 75),
    "claude-opus-4-20250514": (15, 18.75, 30, 1.50, 75),
    "claude-sonnet-5-5": (2, 2.50, 4, 0.20, 10),  # before 2026-10-07: see PRICE_CHANGES
    "claude-sonnet-5": (2, 2.50, 4, 0.20, 10),
    "claude-sonnet-4-6": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-5-20250929": (3, 3.75, 6, 0.30, 15),
    "claude-sonnet-4-20250514": (3, 3.75, 6, 0.30, 15),
    "claude-3-7-sonnet-20250219": (3, 3.75, 6, 0.30, 15),
    "claude-3-5-sonnet-20240620": (3, 3.75, 6, 0.30, 15),
    "claude-3-5-sonnet-20241022": (3, 3.75, 6, 0.30, 15),
    "claude-haiku-5-5": (0.10, 0.125, 0.20, 0.01, 0.50),
    "claude-haiku-4-5-20251001": (1, 1.25, 2, 0.10, 5),
    "claude-3-5-haiku-20241022": (0.80, 1.00, 1.60, 0.08, 4),
    "claude-3-haiku-20240307": (0.25, 0.30, 0.50, 0.03, 1.25),
    "claude-3-opus-20240229": (15, 18.75, 30, 1.50, 75),
}
PRICE_CHANGES = {"claude-sonnet-5-5": ("2026-10-07", (2, 2.50, 4, 0.10, 10))}
# A request whose prompt (input + cache writes + cache reads) exceeds the threshold: every
# token of it at these prices.
TIERS = {
    "claude-sonnet-4-20250514": (200_000, (6, 7.50, 12, 0.60, 22.50)),
    "claude-sonnet-4-5-20250929": (200_000, (6, 7.50, 12, 0.60, 22.50)),
    "claude-haiku-5-5": (100_000, (0.50, 0.625, 1.00, 0.05, 2.50)),
}
# Fast mode: a multiplier on every token price, and the day it ended (None: still offered).
FAST = {"claude-opus-4-6": (6, None), "claude-opus-4-7": (6, "2026-07-24"),
        "claude-opus-4-8": (2, "2026-11-30"), "claude-opus-5": (2, None),
        "claude-opus-5-5": (2, None)}
US_ONLY = {"claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5",
           "claude-opus-5-5", "claude-sonnet-4-6", "claude-sonnet-5", "claude-sonnet-5-5",
           "claude-haiku-5-5", "claude-fable-5", "claude-fable-5-1", "claude-mythos-5",
           "claude-mythos-5-1"}  # 1.1x on every token price with inference_geo "us"
WEB_SEARCH_USD = 0.01


def expected_request_cost(model: str, input: int, output: int, write_5m: int, write_1h: int,
                          read: int, searches: int = 0, speed: str | None = None,
                          geo: str | None = None, day: str = "2026-03-01") -> float:
    prices = PRICES[model]
    if model in PRICE_CHANGES and day >= PRICE_CHANGES[model][0]:
        prices = PRICE_CHANGES[model][1]
    if model in TIERS and input + write_5m + write_1h + read > TIERS[model][0]:
        prices = TIERS[model][1]
    multiplier = 1.0
    if speed == "fast" and model in FAST and (FAST[model][1] is None or day < FAST[model][1]):
        multiplier *= FAST[model][0]
    if geo == "us" and model in US_ONLY:
        multiplier *= 1.1
    p_in, p_w5, p_w1, p_rd, p_out = prices
    return ((input * p_in + write_5m * p_w5 + write_1h * p_w1 + read * p_rd + output * p_out)
            * multiplier / 1e6 + searches * WEB_SEARCH_USD)


@dataclass
class Request:
    message_id: str
    model: str
    input: int
    output: int
    write_5m: int
    write_1h: int
    read: int
    searches: int = 0
    speed: str | None = None
    agent: str = "main"
    geo: str | None = None
    day: str = "2026-03-01"

    @property
    def cost(self) -> float:
        if self.model not in PRICES:
            return 0.0
        return expected_request_cost(self.model, self.input, self.output, self.write_5m,
                                     self.write_1h, self.read, self.searches, self.speed,
                                     self.geo, self.day)


_ids = itertools.count(1)


@dataclass
class TranscriptBuilder:
    session_id: str = "11111111-2222-3333-4444-555555555555"
    cwd: str = "/home/user/project"
    version: str = "2.1.42"
    lines: list[bytes] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)  # what should be billed
    timestamp: int = 0
    now: str | None = None  # when set, every line written gets this timestamp

    def _stamp(self) -> str:
        if self.now:
            return self.now
        self.timestamp += 1
        hours, rest = divmod(self.timestamp, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"2026-03-01T{10 + hours:02d}:{minutes:02d}:{seconds:02d}.000Z"

    def _envelope(self, kind: str, sidechain: bool, agent_id: str | None) -> dict:
        line = {"parentUuid": None, "isSidechain": sidechain, "userType": "external",
                "cwd": self.cwd, "sessionId": self.session_id, "version": self.version,
                "gitBranch": "main", "type": kind, "uuid": f"uuid-{next(_ids)}",
                "timestamp": self._stamp()}
        if agent_id:
            line["agentId"] = agent_id
        return line

    spaced: bool = False  # Claude Code writes compact JSON; spaced lines test robustness

    def add_line(self, obj: dict) -> None:
        separators = (", ", ": ") if self.spaced else (",", ":")
        self.lines.append(json.dumps(obj, ensure_ascii=False, separators=separators).encode()
                          + b"\n")

    def user(self, text: str = "please do the thing", sidechain: bool = False,
             agent_id: str | None = None) -> None:
        line = self._envelope("user", sidechain, agent_id)
        line["message"] = {"role": "user", "content": text}
        self.add_line(line)

    def tool_result_with_nested_usage(self) -> None:
        """A user line whose tool result embeds a `usage` object: must never be billed."""
        line = self._envelope("user", False, None)
        line["message"] = {"role": "user", "content": [{"type": "tool_result", "content": "ok"}]}
        line["toolUseResult"] = {"totalTokens": 999, "usage": {"input_tokens": 1000,
                                                               "output_tokens": 1000}}
        self.add_line(line)

    def response(self, model: str = "claude-sonnet-4-5-20250929", input: int = 10,
                 output: int = 500, write_5m: int = 0, write_1h: int = 0, read: int = 0,
                 searches: int = 0, blocks: int = 3, sidechain: bool = False,
                 agent_id: str | None = None, speed: str | None = None,
                 message_id: str | None = None, split: bool = True, agent: str = "main",
                 billed: bool = True, geo: str | None = None) -> Request:
        """One API response written as `blocks` lines with growing output, like Claude Code."""
        message_id = message_id or f"msg_{next(_ids):024d}"
        request_id = f"req_{next(_ids):024d}"
        for block in range(blocks):
            is_last = block == blocks - 1
            usage = {"input_tokens": input,
                     "cache_creation_input_tokens": write_5m + write_1h,
                     "cache_read_input_tokens": read,
                     "output_tokens": output if is_last else max(1, output // (blocks + 1)),
                     "service_tier": "standard"}
            if split:
                usage["cache_creation"] = {"ephemeral_5m_input_tokens": write_5m,
                                           "ephemeral_1h_input_tokens": write_1h}
            usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": 0}
            if speed:
                usage["speed"] = speed
            if geo:
                usage["inference_geo"] = geo
            usage["iterations"] = [dict(usage, type="message")]  # repeats totals: never added
            line = self._envelope("assistant", sidechain, agent_id)
            day = line["timestamp"][:10]
            line["requestId"] = request_id
            line["message"] = {"id": message_id, "type": "message", "role": "assistant",
                               "model": model,
                               "content": [{"type": "text", "text": f"block {block}"}],
                               "stop_reason": "end_turn" if is_last else None,
                               "usage": usage}
            self.add_line(line)
        request = Request(message_id, model, input, output,
                          write_5m if split else write_5m + write_1h,
                          write_1h if split else 0, read, searches, speed, agent, geo, day)
        if billed:
            self.requests.append(request)
        return request

    def replay(self, request: Request) -> None:
        """A side question's replay of an earlier response into a sidechain: never billed."""
        self.response(request.model, request.input, request.output, request.write_5m,
                      request.write_1h, request.read, blocks=1, sidechain=True,
                      message_id=request.message_id, billed=False)

    def synthetic_error(self) -> None:
        line = self._envelope("assistant", False, None)
        line["isApiErrorMessage"] = True
        line["message"] = {"id": f"msg_err{next(_ids)}", "model": "<synthetic>",
                           "content": [{"type": "text", "text": "API Error: overloaded"}],
                           "usage": {"input_tokens": 0, "output_tokens": 0}}
        self.add_line(line)

    def other_lines(self) -> None:
        """Line types that carry no usage, known and unknown."""
        for kind in ("summary", "file-history-snapshot", "progress", "queue-operation",
                     "custom-title", "turn_end", "some-future-type"):
            self.add_line({"type": kind, "uuid": f"uuid-{next(_ids)}", "sessionId": self.session_id})

    def malformed(self) -> None:
        """A usage line torn by a crash, with the next line written straight after it."""
        self.lines.append(b'{"type":"assistant","message":{"usage":{"input_tokens":5,'
                          b'"output_tokens":1{"type":"user","message":{"content":"hi"}}\n')

    @property
    def expected_cost(self) -> float:
        return sum(r.cost for r in self.requests)

    def expected_tokens(self) -> dict:
        return {"input": sum(r.input for r in self.requests),
                "output": sum(r.output for r in self.requests),
                "cache_creation": sum(r.write_5m + r.write_1h for r in self.requests),
                "cache_creation_1h": sum(r.write_1h for r in self.requests),
                "cache_read": sum(r.read for r in self.requests)}

    def write(self, path: Path, truncate_last: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(self.lines)
        if truncate_last:
            data = data[: len(data) - len(self.lines[-1]) // 2]
        path.write_bytes(data)
        return path


def write_session(folder: Path, builder: TranscriptBuilder) -> Path:
    return builder.write(folder / f"{builder.session_id}.jsonl")


def write_subagent(folder: Path, session_id: str, agent_id: str, agent_type: str | None,
                   build) -> TranscriptBuilder:
    """A Claude Code 2.1 subagent transcript (+ meta.json) of session `session_id`."""
    sub = TranscriptBuilder(session_id=session_id)
    build(sub, agent_id)
    target = folder / session_id / "subagents" / f"agent-{agent_id}.jsonl"
    sub.write(target)
    if agent_type:
        target.with_name(f"agent-{agent_id}.meta.json").write_text(
            json.dumps({"agentType": agent_type, "description": "test", "toolUseId": "toolu_1"}))
    return sub
