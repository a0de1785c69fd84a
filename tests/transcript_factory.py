"""The one writer of Claude Code transcripts, for the tests and the benchmarks.

Lines are shaped as Claude Code writes them (`response_lines`): one API response as several
assistant lines repeating its usage while the output grows. Two ways to use it:

- TranscriptBuilder: chosen requests whose exact cost is known. Expected costs come from
  PRICES below, typed in from the pricing facts independently of data/models.json, so a wrong
  catalog price fails the tests too.
- write_random_session: a transcript of a given size, quickly, for benchmarks. Bytes in real
  transcripts are dominated by tool results (user lines) and assistant content.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

# input, 5m write, 1h write, cache read, output: USD per MTok
PRICES = {
    "claude-fable-5-2": (8, 10, 16, 0.20, 40),  # reported, not yet confirmed officially
    "claude-mythos-5-2": (8, 10, 16, 0.20, 40),
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
           "claude-haiku-5-5", "claude-fable-5", "claude-fable-5-1", "claude-fable-5-2",
           "claude-mythos-5-2", "claude-mythos-5",
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


def response_lines(envelope: Callable[[], dict], *, model: str, message_id: str,
                   request_id: str, input: int, output: int, write_5m: int = 0,
                   write_1h: int = 0, read: int = 0, searches: int = 0, blocks: int = 3,
                   speed: str | None = None, geo: str | None = None, split: bool = True,
                   iterations: bool = True, stop_reason: str = "end_turn",
                   text: Callable[[int], str] = lambda block: f"block {block}") -> list[dict]:
    """The assistant lines of one API response, as Claude Code writes them: `blocks` lines
    with the same id and usage, the output growing to its final count on the last.
    `envelope()` gives each line's common fields (uuid, timestamp, session, ...)."""
    lines = []
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
        if iterations:
            usage["iterations"] = [dict(usage, type="message")]  # repeats totals: never added
        line = envelope()
        line["type"] = "assistant"
        line["requestId"] = request_id
        line["message"] = {"id": message_id, "type": "message", "role": "assistant",
                           "model": model, "content": [{"type": "text", "text": text(block)}],
                           "stop_reason": stop_reason if is_last else None, "usage": usage}
        lines.append(line)
    return lines


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
        lines = response_lines(lambda: self._envelope("assistant", sidechain, agent_id),
                               model=model, message_id=message_id,
                               request_id=f"req_{next(_ids):024d}", input=input, output=output,
                               write_5m=write_5m, write_1h=write_1h, read=read,
                               searches=searches, blocks=blocks, speed=speed, geo=geo,
                               split=split)
        for line in lines:
            self.add_line(line)
        day = lines[0]["timestamp"][:10]
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
            self.add_line({"type": kind, "uuid": f"uuid-{next(_ids)}",
                           "sessionId": self.session_id})

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


MODELS = ["claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5-20251001",
          "claude-opus-4-7", "claude-sonnet-4-20250514"]
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor " * 400


def _random_text(rng: random.Random, mean_bytes: int) -> str:
    size = max(20, int(rng.lognormvariate(0, 1.0) * mean_bytes))
    start = rng.randrange(0, 1000)
    return (_FILLER * (size // len(_FILLER) + 1))[start:start + size]


def write_random_session(path: Path, target_bytes: int, session_id: str, rng: random.Random,
                         *, cwd: str = "/home/user/project", start_ts: float = 1767225600.0,
                         sidechain: bool = False, agent_id: str | None = None,
                         model: str | None = None) -> int:
    """Write one transcript of about `target_bytes` of random requests; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = requests = 0
    ts = start_ts
    model = model or rng.choice(MODELS)
    common = {"isSidechain": sidechain, "userType": "external", "cwd": cwd,
              "sessionId": session_id, "version": "2.1.42", "gitBranch": "main"}
    if agent_id:
        common["agentId"] = agent_id
    with open(path, "wb") as out:
        while written < target_bytes:
            ts += rng.uniform(2, 40)
            stamp = datetime.fromtimestamp(ts, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

            def envelope(stamp=stamp) -> dict:
                return {**common, "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
                        "timestamp": stamp}

            user = {**envelope(), "type": "user",
                    "message": {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_x",
                         "content": _random_text(rng, 6000)}]}}
            write_1h = rng.randint(0, 5000)
            lines = [user, *response_lines(
                envelope, model=model, message_id=f"msg_{rng.getrandbits(96):024x}",
                request_id=f"req_{rng.getrandbits(96):024x}", input=rng.randint(1, 50),
                output=rng.randint(20, 3000), write_1h=write_1h,
                read=rng.randint(10_000, 150_000), blocks=rng.randint(1, 4), iterations=False,
                stop_reason="tool_use", text=lambda block: _random_text(rng, 800))]
            for line in lines:
                data = orjson.dumps(line) + b"\n"
                out.write(data)
                written += len(data)
            requests += 1
    return requests


def write_random_session_with_subagents(folder: Path, session_id: str, main_bytes: int,
                                        subagent_bytes: int, subagents: int,
                                        rng: random.Random, **kwargs) -> Path:
    """A random main transcript and `subagents` Haiku subagents (with their meta.json)."""
    main = folder / f"{session_id}.jsonl"
    write_random_session(main, main_bytes, session_id, rng, **kwargs)
    for _ in range(subagents):
        agent_id = f"a{rng.getrandbits(64):016x}"
        target = folder / session_id / "subagents" / f"agent-{agent_id}.jsonl"
        write_random_session(target, subagent_bytes // subagents, session_id, rng,
                             sidechain=True, agent_id=agent_id,
                             model="claude-haiku-4-5-20251001", **kwargs)
        target.with_name(f"agent-{agent_id}.meta.json").write_bytes(
            orjson.dumps({"agentType": rng.choice(["Explore", "general-purpose", "Plan"])}))
    return main


def usage_line(message_id: str, **changes) -> dict:
    """One usage line, with `changes` ("message.usage.output_tokens": value, ...) applied."""
    line = {"type": "assistant", "sessionId": "a", "timestamp": "2026-03-01T10:00:00Z",
            "cwd": "/p", "requestId": "req_" + message_id,
            "message": {"id": message_id, "model": "claude-opus-4-6",
                        "usage": {"input_tokens": 10, "output_tokens": 5,
                                  "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                                     "ephemeral_1h_input_tokens": 0}}}}
    for path, value in changes.items():
        target = line
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return line


# Values no real request has: each makes a line that must be skipped, and named.
HOSTILE = {
    "count over 2^63": {"message.usage.input_tokens": 2 ** 63},
    "count as a huge float": {"message.usage.output_tokens": 1e30},
    "negative count": {"message.usage.input_tokens": -5},
    "fractional count": {"message.usage.output_tokens": 1.5},
    "count as text": {"message.usage.output_tokens": "10"},
    "count as a boolean": {"message.usage.output_tokens": True},
    "negative 1-hour writes": {"message.usage.cache_creation.ephemeral_1h_input_tokens": -1},
    "message id as a list": {"message.id": ["x"]},
    "request id as an object": {"requestId": {"a": 1}},
    "cwd as a list": {"cwd": ["a"]},
    "agent id as a number": {"agentId": 7},
    "speed as an object": {"message.usage.speed": {"a": 1}},
    "model as a list": {"message.model": ["claude-opus-4-6"]},
    "timestamp as a number": {"timestamp": 12345},
    "timestamp that is not a date": {"timestamp": "yesterday"},
    "no timestamp": {"timestamp": None},
}


def reference_cost(path):
    """A deliberately naive re-implementation of the rules, line by line with stdlib json."""
    best = {}
    for raw in path.read_bytes().splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        message = line.get("message") or {}
        usage = message.get("usage") if isinstance(message, dict) else None
        if line.get("type") != "assistant" or not usage:
            continue
        if message.get("model") == "<synthetic>" or line.get("isApiErrorMessage"):
            continue
        split = usage.get("cache_creation") or {}
        w1 = split.get("ephemeral_1h_input_tokens", 0)
        writes = usage.get("cache_creation_input_tokens", 0)
        entry = (message["model"], usage.get("input_tokens", 0), usage.get("output_tokens", 0),
                 writes - w1, w1, usage.get("cache_read_input_tokens", 0),
                 (usage.get("server_tool_use") or {}).get("web_search_requests", 0),
                 usage.get("speed"))
        rank = (not line.get("isSidechain"), sum(entry[1:6]))
        key = message["id"]
        if key not in best or rank > best[key][0]:
            best[key] = (rank, entry)
    return len(best), sum(expected_request_cost(*entry) for _, entry in best.values())


OPENAI_PRICES = {  # input, cached input, output (USD per million); cache writes at input
    "gpt-5-codex": (1.25, 0.125, 10), "gpt-5.1-codex-max": (1.25, 0.125, 10),
    "gpt-5.5": (5, 0.5, 30)}


class CodexRollout:
    """A Codex CLI rollout file as Codex writes it: a session_meta line, turn_context lines
    naming the model, token_count events with cumulative totals and the request's own counts
    (`input` including `cached` and `writes`, `output` including `reasoning`). `expected`
    is every request's cost, priced by hand from OPENAI_PRICES."""

    def __init__(self, session_id: str = "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0001",
                 cwd: str = "/home/me/app", provider: str = "openai",
                 start: str = "2026-11-20T10:00:00"):
        self.session_id = session_id
        self.lines: list[dict] = [{"timestamp": start + ".000Z", "type": "session_meta",
                                   "payload": {"id": session_id, "cwd": cwd,
                                               "model_provider": provider,
                                               "cli_version": "0.160.0"}}]
        self.clock = datetime.fromisoformat(start).replace(tzinfo=UTC)
        self.totals = [0, 0, 0, 0, 0]  # input, cached, writes, output, reasoning
        self.costs: list[float] = []
        self.model: str | None = None

    def fork(self, session_id: str, subagent: bool = False) -> CodexRollout:
        """A session forked from this one (or a subagent it spawned), as Codex writes it: its
        own session_meta naming this one, then this one's history replayed, token counts
        included; its own requests go on from this one's totals. Its `expected` is its own
        requests' cost alone."""
        child = CodexRollout(session_id)
        meta = child.lines[0]["payload"]
        if subagent:
            meta["source"] = {"subagent": {"thread_spawn": {
                "parent_thread_id": self.session_id, "agent_role": "explorer"}}}
        else:
            meta["forked_from_id"] = self.session_id
        child.lines += [dict(line) for line in self.lines]
        child.totals, child.model, child.clock = list(self.totals), self.model, self.clock
        return child

    def _stamp(self) -> str:
        self.clock += timedelta(seconds=30)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def turn(self, model: str) -> None:
        self.model = model
        self.lines.append({"timestamp": self._stamp(), "type": "turn_context",
                           "payload": {"model": model, "cwd": "/home/me/app"}})

    def request(self, input: int, cached: int = 0, writes: int = 0, output: int = 0,
                reasoning: int = 0, repeat: bool = False, with_last: bool = True) -> None:
        last = [input, cached, writes, output, reasoning]
        self.totals = [a + b for a, b in zip(self.totals, last)]
        info = {"total_token_usage": _codex_usage(self.totals)}
        if with_last:
            info["last_token_usage"] = _codex_usage(last)
        line = {"timestamp": self._stamp(), "type": "event_msg",
                "payload": {"type": "token_count", "info": info}}
        self.lines += [line, line] if repeat else [line]
        if self.model in OPENAI_PRICES:
            p_in, p_cached, p_out = OPENAI_PRICES[self.model]
            self.costs.append(((input - cached - writes) * p_in + cached * p_cached
                               + writes * p_in + output * p_out) / 1e6)
        else:
            self.costs.append(0.0)

    def write(self, path: Path, extra: bytes = b"") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n"
                                  for line in self.lines)
                         + extra)
        return path

    @property
    def expected(self) -> float:
        return sum(self.costs)


def _codex_usage(counts: list[int]) -> dict:
    inputs, cached, writes, output, reasoning = counts
    usage = {"input_tokens": inputs, "cached_input_tokens": cached, "output_tokens": output,
             "reasoning_output_tokens": reasoning, "total_tokens": inputs + output}
    if writes:
        usage["cache_write_input_tokens"] = writes
    return usage


OPENCODE_PRICES = {  # input, output, cache write, cache read (USD per million)
    "claude-sonnet-4-5": (3, 15, 3.75, 0.30), "gpt-5.1-codex": (1.25, 10, 1.25, 0.125)}
OPENCODE_SCHEMA = """
CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, parent_id TEXT,
  slug TEXT NOT NULL, directory TEXT NOT NULL, title TEXT NOT NULL, version TEXT NOT NULL,
  time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL);
CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES session(id),
  time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL REFERENCES message(id),
  session_id TEXT NOT NULL, time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL,
  data TEXT NOT NULL);
CREATE INDEX part_message_id_id_idx ON part (message_id, id);
"""


class OpenCodeStore:
    """OpenCode's database (1.2+) as OpenCode writes it: a session row, an assistant message
    row per model reply (its tokens those of its last step), a `step-finish` part per request
    with that step's tokens; text parts beside them. `total` is written the way the version
    named by `form` wrote it ("today": reasoning beside output, "sdk5": OpenAI's reasoning
    inside output, "first": cache reads inside input, None: no total). `expected` is every
    step's cost priced by hand from OPENCODE_PRICES."""

    def __init__(self, path: Path, cwd: str = "/home/me/app",
                 start: str = "2026-11-22T08:00:00"):
        import sqlite3

        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")  # as OpenCode opens it
        self.db.executescript(OPENCODE_SCHEMA)
        self.cwd, self.costs, self.ids = cwd, [], itertools.count(1)
        self.clock = int(datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp() * 1000)

    def _tick(self) -> int:
        self.clock += 30_000
        return self.clock

    def session(self, ident: str, parent: str | None = None) -> str:
        self.db.execute("INSERT INTO session VALUES (?, 'prj', ?, 'slug', ?, 't', '1.4.0', ?, ?)",
                        (ident, parent, self.cwd, self.clock, self.clock))
        return ident

    def message(self, session: str, model: str, provider: str, agent: str = "build") -> str:
        ident = f"msg_{next(self.ids):04d}"
        data = {"role": "assistant", "time": {"created": self.clock}, "modelID": model,
                "providerID": provider, "agent": agent, "mode": agent,
                "path": {"cwd": self.cwd, "root": self.cwd}, "cost": 0,
                "tokens": {"input": 0, "output": 0, "reasoning": 0,
                           "cache": {"read": 0, "write": 0}}}
        self.db.execute("INSERT INTO message VALUES (?, ?, ?, ?, ?)",
                        (ident, session, self.clock, self.clock, json.dumps(data)))
        return ident

    def step(self, message: str, input: int, output: int, reasoning: int = 0, read: int = 0,
             write: int = 0, form: str | None = "today") -> None:
        """One request: billed as `input` (uncached), `output` + `reasoning`, `read`, `write`;
        stored as the version `form` stored it."""
        stored_input, stored_output = input, output
        if form == "sdk5":
            stored_output = output + reasoning  # reasoning inside output, total without it
        if form == "first":
            stored_input, stored_output = input + read + write, output + reasoning
        tokens = {"input": stored_input, "output": stored_output, "reasoning": reasoning,
                  "cache": {"read": read, "write": write}}
        if form is not None:
            tokens["total"] = {"today": input + output + reasoning + read + write,
                               "sdk5": input + stored_output + read + write,
                               "first": stored_input + stored_output}[form]
        (session, info), at = self.db.execute(
            "SELECT session_id, data FROM message WHERE id = ?", (message,)).fetchone(), \
            self._tick()
        for kind, data in (("text", {"type": "text", "text": "done"}),
                           ("step-finish", {"type": "step-finish", "reason": "stop",
                                            "cost": 0, "tokens": tokens})):
            self.db.execute("INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                            (f"prt_{next(self.ids):04d}_{kind}", message, session, at, at,
                             json.dumps(data)))
        info = json.loads(info) | {"tokens": tokens}  # the message keeps its last step's
        self.db.execute("UPDATE message SET data = ?, time_updated = ? WHERE id = ?",
                        (json.dumps(info), at, message))
        p_in, p_out, p_write, p_read = OPENCODE_PRICES[info["modelID"]]
        self.costs.append((input * p_in + (output + reasoning) * p_out + write * p_write
                           + read * p_read) / 1e6)

    @property
    def expected(self) -> float:
        return sum(self.costs)


def mixed_history(claude_config: Path, codex_home: Path, gemini_home: Path,
                  opencode_home: Path, project: str) -> dict[str, tuple[int, float]]:
    """One day (2026-11-20, UTC) of all four agents' logs, each where its agent writes it;
    returns per app its requests and their cost priced by hand."""
    claude = TranscriptBuilder(session_id="claude-1", cwd=project)
    claude.now = "2026-11-20T09:00:00.000Z"
    claude.response(model="claude-sonnet-4-5-20250929", input=100, output=2_000, read=30_000)
    write_session(claude_config / "projects" / "-p", claude)
    rollout = CodexRollout(cwd=project)
    rollout.turn("gpt-5.5")
    rollout.request(300_000, cached=200_000, output=5_000)  # over 272k: the long-prompt tier
    rollout.request(50_000, cached=40_000, output=1_000, reasoning=600)
    rollout.write(codex_home / "sessions" / "2026" / "11" / "20"
                  / f"rollout-2026-11-20T10-00-00-{rollout.session_id}.jsonl")
    codex_usd = (100_000 * 10 + 200_000 * 1 + 5_000 * 45) / 1e6 \
        + (10_000 * 5 + 40_000 * 0.5 + 1_000 * 30) / 1e6  # 2x input, 1.5x output, then not
    chats = gemini_home / ".gemini" / "tmp" / "0a1b2c3d" / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    (chats / "session-g1.json").write_text(json.dumps({
        "sessionId": "g1", "messages": [{
            "id": "m1", "timestamp": "2026-11-20T11:00:00.000Z", "type": "gemini",
            "model": "gemini-2.5-flash", "tokens": {"input": 9_000, "cached": 6_000,
                                                    "output": 300, "thoughts": 200}}]}))
    gemini_usd = (3_000 * 0.30 + 6_000 * 0.03 + 500 * 2.50) / 1e6
    store = OpenCodeStore(opencode_home / "opencode.db", cwd=project,
                          start="2026-11-20T12:00:00")
    store.session("ses_1")
    reply = store.message("ses_1", "gpt-5.1-codex", "openai")
    store.step(reply, 4_000, 700, reasoning=300, read=12_000)
    store.step(reply, 1_000, 100, read=16_000)
    store.db.close()
    return {"claude-code": (1, claude.expected_cost), "codex": (2, codex_usd),
            "gemini-cli": (1, gemini_usd), "opencode": (2, store.expected)}
