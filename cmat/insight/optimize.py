"""`cmat optimize`: what to change to spend less, each suggestion with the dollars it would
have saved over the period, computed by re-pricing the requests it is about.

Suggestions (each a candidate to try, never proof that the cheaper way does as well):
- model: an agent / task type whose requests ran on an expensive model while the same kind
  of work, with prompts of a similar size, ran on a cheaper one; savings = those requests
  re-priced on the cheaper model.
- cache-ttl: a run's cached prefix expired (5 minutes) before the next request, which wrote it
  again; savings = those re-writes as reads, less the 1-hour writes' premium.
- cache-1h: 1-hour cache writes that no request read after 5 minutes; savings = the premium.
- long-prompt: requests over a model's long-prompt tier; savings = the tier's premium.
- waste: responses the user interrupted, and subagent runs whose result was thrown away;
  savings = their cost. API error lines are counted (they are not billed).
- runaway: sessions far above their agent's usual (over the 95th percentile and twice the
  median); savings = the cost above the median, for review.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

from cmat.catalog import ModelService
from cmat.insight.history import StoredRequest, load
from cmat.ledger import Ledger
from cmat.pricing import pricing_at, stored_cost
from cmat.rates import PER_MTOK
from cmat.stats import percentile
from cmat.untrusted import Unreadable, open_untrusted, read_untrusted

CACHE_TTL_SECONDS = 300  # the 5-minute cache
LONG_TTL_SECONDS = 3600  # the 1-hour cache
MIN_SIMILAR_REQUESTS = 5  # requests on the cheaper model before it counts as evidence
SIMILAR_PROMPT_SHARE = 0.5  # the cheaper model's median prompt, at least this share
RUNAWAY_MIN_SESSIONS = 20  # sessions of an agent before its 95th percentile means much
RUNAWAY_PERCENTILE = 0.95
INTERRUPTED = "[Request interrupted by user"  # what Claude Code writes as the next prompt


@dataclass
class Suggestion:
    kind: str
    title: str
    savings_usd: float
    action: str
    evidence: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"kind": self.kind, "title": self.title, "savings_usd": self.savings_usd,
                "action": self.action, "evidence": self.evidence}


def _evidence(requests: list[StoredRequest], **more) -> dict:
    """Which sessions, tasks, agents and projects a suggestion rests on."""
    def distinct(values):
        return sorted({v for v in values if v})

    return {"requests": len(requests), "sessions": distinct(r.session_id for r in requests),
            "tasks": distinct(r.task_id for r in requests),
            "agents": distinct(r.agent for r in requests),
            "projects": distinct(r.project for r in requests), **more}


# --- model right-sizing -----------------------------------------------------------------------


def right_size(requests: list[StoredRequest], models: ModelService) -> list[Suggestion]:
    """Agents and task types that ran on two models: the costlier one's requests re-priced
    on the cheaper one, where that one did the same kind of work on prompts of a similar
    size."""
    by_work: dict[tuple, dict[str, list[StoredRequest]]] = defaultdict(lambda: defaultdict(list))
    for request in requests:
        if request.cost is None or (request.agent == "main" and not request.task_type):
            continue  # untracked interactive work is no one kind of work
        by_work[(request.agent, request.task_type)][request.model].append(request)
    found = []
    for (agent, task_type), by_model in by_work.items():
        if len(by_model) < 2:
            continue
        prompt = {model: median(r.tokens.input_side for r in rs) for model, rs in by_model.items()}
        for model, ran in by_model.items():
            best = None
            for cheaper, evidence in by_model.items():
                entry = models.get_by_pattern(cheaper)
                if cheaper == model or entry is None or len(evidence) < MIN_SIMILAR_REQUESTS \
                        or prompt[cheaper] < SIMILAR_PROMPT_SHARE * prompt[model]:
                    continue
                repriced = sum(stored_cost(entry, r.ts, r.tokens, r.searches, None, r.geo)
                               for r in ran)
                saved = sum(r.cost for r in ran) - repriced
                if saved > 0 and (best is None or saved > best[1]):
                    best = (cheaper, saved, len(evidence))
            if best is None:
                continue
            cheaper, saved, similar = best
            kind = f"{agent}" + (f" ({task_type} tasks)" if task_type else "")
            found.append(Suggestion(
                "model", f"{kind}: try {_name(models, cheaper)} instead of "
                         f"{_name(models, model)}", saved,
                f"Run {kind} on {_name(models, cheaper)} (a candidate to try: {similar} "
                f"requests of the same work ran on it, with prompts of a similar size; check "
                f"the results before switching for good).",
                _evidence(ran, model=model, cheaper_model=cheaper,
                          requests_on_cheaper_model=similar)))
    return found


def _name(models: ModelService, model: str) -> str:
    entry = models.get_by_pattern(model)
    return entry.name if entry else model


# --- cache economics --------------------------------------------------------------------------


def _runs(requests: list[StoredRequest]) -> dict[tuple, list[StoredRequest]]:
    """Each run's requests on each model, in time order (a cache belongs to one model)."""
    runs: dict[tuple, list[StoredRequest]] = defaultdict(list)
    for request in requests:
        runs[(*request.run, request.model)].append(request)
    return runs


def cache_economics(requests: list[StoredRequest], models: ModelService) -> list[Suggestion]:
    rewrites: list[tuple[StoredRequest, float]] = []
    unread: list[tuple[StoredRequest, float]] = []
    for run in _runs(requests).values():
        entry = models.get_by_pattern(run[0].model)
        if entry is None:
            continue
        for before, after in zip(run, [*run[1:], None]):
            prices = pricing_at(entry, before.ts)
            gap = after.ts - before.ts if after else None
            cached = before.tokens.cache_read + before.tokens.cache_creation
            if after is not None and CACHE_TTL_SECONDS < gap <= LONG_TTL_SECONDS \
                    and after.tokens.cache_creation and after.tokens.cache_read < cached:
                rewritten = min(after.tokens.cache_creation, cached - after.tokens.cache_read)
                five = before.tokens.cache_creation - before.tokens.cache_creation_1h
                saved = (rewritten * (prices.cache_write - prices.cache_read)
                         - five * (prices.cache_write_1h - prices.cache_write)) / PER_MTOK
                if saved > 0:
                    rewrites.append((after, saved))
            if before.tokens.cache_creation_1h and (
                    after is None or gap > LONG_TTL_SECONDS or not after.tokens.cache_read
                    or gap <= CACHE_TTL_SECONDS):
                premium = before.tokens.cache_creation_1h * (
                    prices.cache_write_1h - prices.cache_write) / PER_MTOK
                if premium > 0:
                    unread.append((before, premium))
    rewrites, unread = _one_advice_per_session(rewrites, unread)
    found = []
    if rewrites:
        found.append(Suggestion(
            "cache-ttl", "Cached prompts expired between requests and were written again",
            sum(s for _, s in rewrites),
            "Use 1-hour cache writes for these sessions (their requests come 5 to 60 minutes "
            "apart): the prefix is then read, not written again. In Claude Code: "
            "ENABLE_PROMPT_CACHING_1H=1 in the environment (or in settings.json's \"env\").",
            _evidence([r for r, _ in rewrites], rewrites=len(rewrites))))
    if unread:
        found.append(Suggestion(
            "cache-1h", "1-hour cache writes that nothing read after 5 minutes",
            sum(s for _, s in unread),
            "Use 5-minute cache writes for these sessions: no request came back after 5 "
            "minutes to read what the 1-hour writes kept. In Claude Code: "
            "FORCE_PROMPT_CACHING_5M=1 in the environment (or in settings.json's \"env\").",
            _evidence([r for r, _ in unread])))
    return found


def _one_advice_per_session(rewrites: list, unread: list) -> tuple[list, list]:
    """A session gets one cache advice, not both: 1-hour writes where the re-writes they
    would spare outweigh the premium of the 1-hour writes nobody read, else 5-minute writes;
    for a session that had both, the advice kept counts only the difference."""
    spared, premium = defaultdict(float), defaultdict(float)
    for request, saved in rewrites:
        spared[request.session_id] += saved
    for request, paid in unread:
        premium[request.session_id] += paid

    def net(items: list, mine: dict, theirs: dict, keep) -> list:
        kept = []
        for request, amount in items:
            session = request.session_id
            if keep(mine[session], theirs[session]):
                kept.append((request, amount * (1 - theirs[session] / mine[session])))
        return kept

    return (net(rewrites, spared, premium, lambda a, b: a > b),
            net(unread, premium, spared, lambda a, b: a >= b and a > 0))


def cache_hit_ratios(requests: list[StoredRequest], limit: int = 10) -> list[dict]:
    """Per project: the share of the prompt read from cache, costliest projects first."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for request in requests:
        row = sums[request.project or "?"]
        row[0] += request.tokens.cache_read
        row[1] += request.tokens.input_side
        row[2] += request.cost or 0.0
    ordered = sorted(sums.items(), key=lambda item: -item[1][2])[:limit]
    return [{"project": project, "cache_hit_ratio": reads / prompt if prompt else 0.0,
             "cost_usd": cost} for project, (reads, prompt, cost) in ordered]


# --- long prompts -----------------------------------------------------------------------------


def long_prompts(requests: list[StoredRequest], models: ModelService) -> list[Suggestion]:
    premiums: list[tuple[StoredRequest, float]] = []
    for request in requests:
        entry = models.get_by_pattern(request.model)
        if request.cost is None or entry is None or not pricing_at(entry, request.ts).tiers:
            continue
        base = stored_cost(entry, request.ts, request.tokens, request.searches, request.speed,
                           request.geo, tiers=False)
        if request.cost - base > 1e-12:
            premiums.append((request, request.cost - base))
    if not premiums:
        return []
    by_session: dict[str, float] = defaultdict(float)
    for request, premium in premiums:
        by_session[request.session_id] += premium
    return [Suggestion(
        "long-prompt", "Requests over a model's long-prompt tier", sum(p for _, p in premiums),
        "Compact these sessions (/compact) before their prompts cross the tier, or start a "
        "new session: every token of a request over it is billed at the higher price.",
        _evidence([r for r, _ in premiums], premium_by_session=dict(sorted(
            by_session.items(), key=lambda item: -item[1])[:10])))]


# --- retries and waste ------------------------------------------------------------------------


def waste(requests: list[StoredRequest], transcripts: list[Path]) -> tuple[list[Suggestion],
                                                                          dict]:
    """Interrupted responses and discarded subagent runs (their cost), and API error lines
    (counted: they are not billed), read from the period's transcripts."""
    import orjson

    by_id = {r.message_id: r for r in requests}
    sessions = {r.session_id for r in requests}
    interrupted: dict[str, StoredRequest] = {}
    discarded_tools: set[str] = set()
    errors: dict[str, int] = defaultdict(int)
    subagent_tools: dict[str, tuple[str, str]] = {}  # tool_use id -> (session, agent id)
    for path in transcripts:
        session = path.parent.parent.name if path.parent.name == "subagents" else path.stem
        if session not in sessions:
            continue
        if path.parent.name == "subagents":
            meta = path.with_name(path.stem + ".meta.json")
            try:
                tool = orjson.loads(read_untrusted(meta, 65536) or b"{}").get("toolUseId")
            except (Unreadable, ValueError, AttributeError):
                tool = None
            if tool:
                subagent_tools[tool] = (session, path.stem.removeprefix("agent-"))
        try:
            handle = open_untrusted(path)
        except Unreadable:
            continue
        if handle is None:
            continue
        with handle:
            data = handle.read()
        if b"isApiErrorMessage" not in data and INTERRUPTED.encode() not in data:
            continue  # the common case: nothing to look at in this file
        last_response = None
        for line in data.splitlines():
            if b'"assistant"' not in line and b"interrupted" not in line:
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict):
                continue
            message = entry.get("message") if isinstance(entry.get("message"), dict) else {}
            if entry.get("isApiErrorMessage"):
                errors[session] += 1
            elif entry.get("type") == "assistant" and isinstance(message.get("id"), str):
                last_response = message["id"]
            elif entry.get("type") == "user" and INTERRUPTED in str(message.get("content")):
                for block in message.get("content") or []:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        discarded_tools.add(str(block.get("tool_use_id")))
                if last_response in by_id:
                    interrupted[last_response] = by_id[last_response]
    found = []
    cut = [r for r in interrupted.values() if r.cost]
    if cut:
        found.append(Suggestion(
            "waste", "Responses interrupted by the user", sum(r.cost for r in cut),
            "Interrupt sooner, or give clearer instructions up front: these responses were "
            "paid for and thrown away.", _evidence(cut)))
    runs = {subagent_tools[t] for t in discarded_tools if t in subagent_tools}
    thrown = [r for r in requests if (r.session_id, r.agent_id) in runs and r.cost]
    if thrown:
        found.append(Suggestion(
            "waste", "Subagent runs whose result was thrown away", sum(r.cost for r in thrown),
            "These subagents were interrupted before they answered: narrow what they are "
            "asked, or stop them earlier.", _evidence(thrown, runs=len(runs))))
    return found, {"api_error_lines": sum(errors.values()),
                   "sessions_with_api_errors": sorted(errors)}


# --- runaway sessions -------------------------------------------------------------------------


def runaways(requests: list[StoredRequest]) -> list[Suggestion]:
    sessions: dict[str, dict] = {}
    for request in requests:
        row = sessions.setdefault(request.session_id, {"agent": "main", "cost": 0.0,
                                                       "requests": []})
        if request.agent_id is None:
            row["agent"] = request.agent  # a session belongs to its main thread's agent
        row["cost"] += request.cost or 0.0
        row["requests"].append(request)
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for row in sessions.values():
        by_agent[row["agent"]].append(row)
    found = []
    for agent, rows in by_agent.items():
        if len(rows) < RUNAWAY_MIN_SESSIONS:
            continue
        costs = [row["cost"] for row in rows]
        usual, high = median(costs), percentile(costs, RUNAWAY_PERCENTILE)
        flagged = [row for row in rows if row["cost"] > high and row["cost"] > 2 * usual]
        if not flagged:
            continue
        found.append(Suggestion(
            "runaway", f"{agent}: sessions far above the usual ${usual:,.2f}",
            sum(row["cost"] - usual for row in flagged),
            f"Review these sessions: each cost more than {agent}'s 95th percentile "
            f"(${high:,.2f}) and twice its median; the savings are what they cost above the "
            f"median.", _evidence([r for row in flagged for r in row["requests"]],
                                  session_costs={r["requests"][0].session_id: r["cost"]
                                                 for r in flagged}, median_usd=usual,
                                  p95_usd=high)))
    return found


# --- all of it --------------------------------------------------------------------------------


def optimize(ledger: Ledger, models: ModelService, since: float | None, until: float | None,
             project: str | None = None, task: str | None = None,
             enhancement: str | None = None) -> dict:
    """Every suggestion for the period, costliest first, with the total they would save."""
    requests = load(ledger, since, until, project, task, enhancement)
    suggestions = [*right_size(requests, models), *cache_economics(requests, models),
                   *long_prompts(requests, models), *runaways(requests)]
    wasted, errors = waste(requests, [Path(p) for p in ledger.transcript_paths()])
    suggestions += wasted
    suggestions.sort(key=lambda s: -s.savings_usd)
    return {"since": since, "until": until, "requests": len(requests),
            "cost_usd": sum(r.cost or 0.0 for r in requests),
            "potential_savings_usd": sum(s.savings_usd for s in suggestions),
            "suggestions": [s.to_json() for s in suggestions],
            "cache_hit_ratio_by_project": cache_hit_ratios(requests), **errors}
