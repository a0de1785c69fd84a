"""Budgets: which apply right now, what has been spent against each, and when they reset.

Spend is read from the ledger (after the running session's new lines were imported, see
`cmat.ingest.import_session`). A task's spend is the requests of the sessions attributed to it,
plus, for the current task only, the running session's requests while it is not attributed
yet; likewise for an enhancement, within its project.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cmat.budgets.config import (
    APP_SCOPES,
    KEYED_SCOPES,
    LIFETIME,
    RUN_SCOPES,
    TEAM_SCOPES,
    Config,
    load_config,
    toml_key,
)
from cmat.errors import CmatError, UsageError
from cmat.ledger import Ledger
from cmat.money import usd
from cmat.periods import period_bounds, zone
from cmat.request import MAIN_AGENT
from cmat.tasks.queue import QueueService, enhancement_of
from cmat.tasks.queue import current_context as current_task
from cmat.usage import CLAUDE_CODE

PERIOD_WORDS = {"daily": "today", "weekly": "this week", "monthly": "this month"}


@dataclass(frozen=True)
class Context:
    """What a check is about: the project, the running session, the current task."""

    project: Path
    tz: ZoneInfo
    now: float
    session_id: str | None = None
    task_id: str | None = None
    enhancement: str | None = None
    agent: str | None = None  # the session's agent: CMAT's assigned agent, else none
    subagent_id: str | None = None  # the subagent calling, when the hook payload says
    subagent_type: str | None = None
    problem: str | None = None  # why the current task is unknown (the other budgets hold)


@dataclass(frozen=True)
class Budget:
    key: str  # unique: 'daily', 'project-monthly', 'task:ID', ...
    scope: str  # what `cmat budget set` calls it
    label: str
    limit: float
    unit: str  # 'usd' or 'tokens'
    period: str | None  # 'daily', 'weekly', 'monthly'; None for the others (no reset)
    options: str = ""  # what `cmat budget set SCOPE AMOUNT` needs to name this very budget
    # The config files whose limit must be raised, as `cmat budget set` flags ("": the file
    # it writes by default, the user's for user-wide scopes, the project's for the others).
    files: tuple[str, ...] = ("",)

    def raise_with(self, spent: float) -> str:
        """The command that lifts this budget above what was spent, in every file that
        holds it back (a project file's stricter limit, and the user's under it)."""
        amount = _raised(max(self.limit, spent), self.unit)
        return " && ".join(f"cmat budget set {self.scope} {amount}{self.options}"
                           + (f" {flag}" if flag else "") for flag in self.files)


@dataclass(frozen=True)
class Status:
    budget: Budget
    spent: float
    period_start: float  # unix seconds; 0 for budgets without a period
    reset_at: datetime | None

    @property
    def percent(self) -> float:
        if self.budget.limit <= 0:  # 0: nothing may be spent, so the budget is used up
            return 100.0
        return self.spent / self.budget.limit * 100

    @property
    def remaining(self) -> float:
        return max(self.budget.limit - self.spent, 0.0)

    @property
    def exhausted(self) -> bool:
        """Spent reached the limit; a limit of 0 is always exhausted (a freeze)."""
        return self.spent >= self.budget.limit

    def amount(self, value: float) -> str:
        return usd(value) if self.budget.unit == "usd" else f"{int(value):,} tokens"

    def spent_words(self) -> str:
        when = PERIOD_WORDS.get(self.budget.period or "",
                                "in this run" if self.budget.scope in RUN_SCOPES else "so far")
        return f"Spent {when}: {self.amount(self.spent)}"

    @property
    def raise_with(self) -> str:
        return self.budget.raise_with(self.spent)

    def reset_words(self) -> str:
        if self.reset_at is None:
            return f"Raise it with: {self.raise_with}"
        moment = self.reset_at.strftime("%H:%M")
        if self.budget.period != "daily":
            moment = self.reset_at.strftime("%a %d %b %H:%M")
        return f"Reset at {moment} {self.reset_at.tzinfo}, or raise it with: {self.raise_with}"

    def exhausted_message(self) -> str:
        """The message shown when the budget blocks work."""
        return "\n".join([f"{self.budget.label} exhausted ({self.amount(self.budget.limit)})",
                          self.spent_words(), self.reset_words()])

    def to_json(self) -> dict:
        return {"budget": self.budget.key, "scope": self.budget.scope, "label": self.budget.label,
                "unit": self.budget.unit, "limit": self.budget.limit, "spent": self.spent,
                "percent": self.percent, "remaining": self.remaining,
                "exhausted": self.exhausted,
                "reset_at": self.reset_at.isoformat() if self.reset_at else None,
                "raise_with": self.raise_with}


def _raised(value: float, unit: str) -> str:
    """A round figure 50 % above `value`, to suggest in messages."""
    value = value * 1.5 if value else 1
    if unit == "tokens":
        return str(int(round(value, -3)) or 1000)
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}".rstrip("0").rstrip(".")


def _files(config: Config, name: str) -> tuple[str, ...]:
    """Where the limit `name` (its TOML path) must be raised: the file that set it, and the
    user's under a project's stricter one."""
    if config.origin.get(name) != "project":
        return ("--user",)
    return ("--user", "") if name in config.user_value else ("",)


def _tokens_label(config: Config) -> str:
    return "input+output" if config.token_count == "input+output" else "cache included"


def applicable(config: Config, context: Context, every_key: bool = False) -> list[Budget]:
    """Every configured budget that applies to `context`; with `every_key`, also the budgets
    set for other tasks, enhancements and sessions (for `cmat budget status`)."""
    found = []
    for period, limit in config.global_usd.items():
        if period == LIFETIME:
            found.append(Budget(LIFETIME, LIFETIME, "Lifetime budget", limit, "usd", None,
                                files=("--user",)))
        else:
            found.append(Budget(period, period, f"{period.capitalize()} budget", limit, "usd",
                                period))
    if config.daily_tokens is not None:
        found.append(Budget("daily-tokens", "daily-tokens",
                            f"Daily token budget ({_tokens_label(config)})",
                            config.daily_tokens, "tokens", "daily"))
    for period, limit in config.project_usd.items():
        name = "lifetime" if period == LIFETIME else period
        found.append(Budget(f"project-{period}", "project",
                            f"Project {name} budget ({context.project.name})", limit, "usd",
                            None if period == LIFETIME else period, f" --period {period}",
                            _files(config, f"budgets.project.{period}")))
    if "daily" in config.project_tokens:
        found.append(Budget("project-daily-tokens", "project",
                            f"Project daily token budget ({context.project.name}, "
                            f"{_tokens_label(config)})", config.project_tokens["daily"],
                            "tokens", "daily", " --period daily-tokens",
                            _files(config, "budgets.project.daily_tokens")))
    for scope, limit in config.team_budgets.items():
        period = scope.removeprefix("team-")
        found.append(Budget(scope, scope, f"Team {period} budget", limit, "usd", period,
                            " --team"))
    found += run_budgets(config, context)
    for scope in APP_SCOPES:
        period = scope.removeprefix("app-")
        for key, limit in config.keyed.get(toml_key(scope), {}).items():
            found.append(Budget(f"{scope}:{key}", scope, f"{period.capitalize()} budget of "
                                f"{key.replace('provider:', 'provider ')}", limit, "usd",
                                period, f" --app {key}",
                                _files(config, f"budgets.{toml_key(scope)}.{key}")))
    keyed = [("task", context.task_id), ("enhancement", context.enhancement),
             ("session", context.session_id)]
    if every_key:
        keyed += [(scope, key) for scope, limits in config.keyed.items() for key in limits
                  if scope in KEYED_SCOPES and key != "default" and (scope, key) not in keyed]
    for scope, key in keyed:
        if key is None:
            continue
        limit = config.keyed_limit(scope, key)
        if limit is None:
            continue
        own = config.keyed.get(scope, {}).get(key) is not None
        option = "" if not own else (f" --id {key}" if scope != "enhancement"
                                     else f" --name {key}")
        name = f"budgets.{scope}.{key if own else 'default'}"
        found.append(Budget(f"{scope}:{key}", scope, f"{scope.capitalize()} {key} budget",
                            limit, "usd", None, option, _files(config, name)))
    return found


def run_budgets(config: Config, context: Context) -> list[Budget]:
    """The per-run limits of the running session and, when a subagent is calling, of that
    subagent's run: each by its agent's name, else the default."""
    if context.session_id is None:
        return []
    runs = [(context.session_id, None, context.agent or MAIN_AGENT)]
    if context.subagent_id:
        runs.append((context.session_id, context.subagent_id,
                     context.subagent_type or "subagent"))
    found = []
    for scope in RUN_SCOPES:
        limits = config.keyed.get(toml_key(scope), {})
        for session_id, agent_id, agent in runs:
            limit = limits.get(agent, limits.get("default"))
            if limit is None:
                continue
            own = agent in limits
            where = f"subagent {agent_id[:8]}" if agent_id else f"session {session_id[:8]}"
            tokens = f", {_tokens_label(config)}" if scope == "run-tokens" else ""
            found.append(Budget(
                f"{scope}:{session_id}" + (f"/{agent_id}" if agent_id else ""), scope,
                f"Run {'token ' if tokens else ''}budget ({agent}, {where}{tokens})", limit,
                "tokens" if tokens else "usd", None, f" --agent {agent}" if own else "",
                _files(config, f"budgets.{toml_key(scope)}.{agent if own else 'default'}")))
    return found


def spent(ledger: Ledger, budget: Budget, context: Context, cache_tokens: bool = False,
          team_totals: dict | None = None) -> tuple[float, float, datetime | None]:
    """(spent, period start, reset moment) of one budget; `cache_tokens`: token budgets
    count cache writes and reads too; `team_totals`: what the last sync cached."""
    project = str(context.project) if budget.scope == "project" else None
    if budget.period and budget.scope in TEAM_SCOPES:
        start, reset = period_bounds(budget.period, context.tz, context.now)
        totals = team_totals or {}
        cached = (totals.get("spent") or {}).get(budget.period)
        team = cached[1] if cached and cached[0] == start else 0.0
        # Plus what this machine recorded that the last sync did not send.
        return team + ledger.unsynced_spend(start), start, reset
    if budget.period:
        start, reset = period_bounds(budget.period, context.tz, context.now)
        if budget.scope in APP_SCOPES:
            return ledger.spend_usd(since=start, counted=budget.key.split(":", 1)[1]), \
                start, reset
        if budget.unit == "tokens":
            amount = ledger.spend_tokens(start, project, cache_tokens)
        else:
            amount = ledger.spend_usd(since=start, project=project)
        return amount, start, reset
    if budget.key in (LIFETIME, f"project-{LIFETIME}"):
        return ledger.spend_usd(project=project), 0.0, None
    scope, key = budget.key.split(":", 1)
    if scope in RUN_SCOPES:
        session_id, _, agent_id = key.partition("/")
        usd_spent, io_tokens, all_tokens = ledger.run_spend(session_id, agent_id or None)
        if scope == "run":
            return usd_spent, 0.0, None
        return float(all_tokens if cache_tokens else io_tokens), 0.0, None
    if scope == "session":
        return ledger.session_totals(key)[1], 0.0, None
    # The running session counts for the task (enhancement) it is being run for, no other.
    if scope == "task":
        running = context.session_id if key == context.task_id else None
        return ledger.task_spend(key, running), 0.0, None
    running = context.session_id if key == context.enhancement else None
    return ledger.enhancement_spend(key, str(context.project), running), 0.0, None


def evaluate(ledger: Ledger, budgets: list[Budget], context: Context,
             config: Config) -> list[Status]:
    cache = config.token_count == "all"
    return [Status(budget, *spent(ledger, budget, context, cache, config.team_totals))
            for budget in budgets]


def counts_claude_code(budget: Budget) -> bool:
    """Whether Claude Code's spend counts towards `budget`: what its hooks may enforce. An
    app budget of another agent (codex, a provider but Anthropic) is watched, reported and
    alerted on, but a Claude Code tool call adds nothing to it, so it never denies one."""
    if budget.scope not in APP_SCOPES:
        return True
    return budget.key.split(":", 1)[1] in (CLAUDE_CODE, "provider:anthropic")


def session_share(budget: Budget, context: Context, config: Config,
                  attributed: tuple | None) -> tuple[str, str | None] | None:
    """What one more Claude Code request of the running session adds to `budget`, as `spent`
    sums it: (unit: "usd", or "io" / "all" tokens as the budget counts them; the project
    folder the request's cwd must be in, or None), or None when nothing. `attributed`: the
    session's (task, enhancement, agent, project folder) once it was attributed. Raises
    ValueError where the answer needs more than this (per-run limits; a session counted
    twice for one enhancement)."""
    unit = ("all" if config.token_count == "all" else "io") if budget.unit == "tokens" \
        else "usd"
    if budget.scope in RUN_SCOPES:
        raise ValueError(f"{budget.key}: a run's spend depends on the agent that made it")
    if budget.scope in APP_SCOPES:
        return (unit, None) if counts_claude_code(budget) else None
    if budget.scope == "project":
        return unit, str(context.project)
    if budget.period or budget.key == LIFETIME:
        return unit, None
    scope, key = budget.key.split(":", 1)
    if scope == "session":
        return (unit, None) if key == context.session_id else None
    task = attributed[0] if attributed else None
    if scope == "task":  # as task_spend: its sessions, and the running one while unattributed
        return (unit, None) if key == task or (task is None and key == context.task_id) \
            else None
    as_attributed = bool(attributed) and attributed[1] == key \
        and attributed[3] == str(context.project)
    as_running = task is None and key == context.enhancement
    if as_attributed and as_running:
        raise ValueError(f"{budget.key}: the session counts twice")
    return (unit, None) if as_attributed or as_running else None


def exhausted_now(project: Path, ledger: Ledger, now: float, session_id: str | None,
                  task_id: str | None) -> list[Status]:
    """Exhausted budgets of `project` for this session and task that no override lifts, of
    those Claude Code's spend counts towards."""
    config = load_config(project)
    if not config.has_budgets:
        return []
    context = current_context(project, config, now, session_id, task_id)
    statuses = evaluate(ledger, [b for b in applicable(config, context)
                                 if counts_claude_code(b)], context, config)
    return [s for s in statuses
            if s.exhausted and not active_override(ledger, s.budget, context.now)]


def short_of(project: Path, ledger: Ledger, now: float, task_id: str | None,
             estimated_usd: float) -> list[Status]:
    """The USD budgets that apply to a task about to start (`task_id`, else the current
    one) whose remaining amount is below `estimated_usd`, and none an override lifts."""
    config = load_config(project)
    context = current_context(project, config, now, None, task_id)
    statuses = evaluate(ledger, [b for b in applicable(config, context)
                                 if counts_claude_code(b)], context, config)
    return [s for s in statuses if s.budget.unit == "usd" and s.budget.scope not in RUN_SCOPES
            and (s.exhausted or s.remaining < estimated_usd)
            and not active_override(ledger, s.budget, context.now)]


# --- overrides ----------------------------------------------------------------------------------

OVERRIDE_WORDS = ("1", "true", "yes")


def override_env_warning() -> str | None:
    """What to say when CMAT_OVERRIDE_LIMIT holds something other than 1, true or yes (it is
    then ignored: a typo must not switch budgets off, nor silently fail to)."""
    value = os.environ.get("CMAT_OVERRIDE_LIMIT", "").strip()
    if value and value.lower() not in OVERRIDE_WORDS and value.lower() not in ("0", "false",
                                                                                 "no"):
        return (f"CMAT_OVERRIDE_LIMIT={value[:20]!r} is not 1, true or yes: budgets stay "
                "enforced")
    return None


def active_override(ledger: Ledger, budget: Budget, now: float) -> bool:
    return overridden(ledger, budget.scope, now)


def overridden(ledger: Ledger, scope: str, now: float) -> bool:
    """Whether limits of `scope` are lifted now (CMAT_OVERRIDE_LIMIT, `budget override`)."""
    if os.environ.get("CMAT_OVERRIDE_LIMIT", "").strip().lower() in OVERRIDE_WORDS:
        return True
    return ledger.override_active(scope, now)


def add_override(ledger: Ledger, seconds: float, scope: str, reason: str | None,
                 now: float) -> float:
    """Lift `scope`'s budgets for `seconds` from `now` (0 ends the overrides of that scope,
    'all' every scope's); returns when it ends."""
    from cmat import labels  # only an override needs who made it

    until = now + seconds
    who = f"{labels.user()}@{labels.machine()}"
    with ledger.transaction():
        ledger.add_override(scope, until, who, reason, now)
    return until


def parse_duration(text: str) -> float:
    """Seconds in '90m', '2h', '1d' or '1h30m'."""
    parts = re.fullmatch(r"\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*", text)
    if not parts or not any(parts.groups()):
        raise UsageError(f"{text!r} is not a duration such as 30m, 2h or 1d")
    days, hours, minutes = (int(g or 0) for g in parts.groups())
    return days * 86400 + hours * 3600 + minutes * 60


def current_context(project: Path, config: Config, now: float, session_id: str | None = None,
                    task_id: str | None = None, with_details: bool = True,
                    subagent: tuple[str | None, str | None] = (None, None)) -> Context:
    """The context of `project` at `now`: the session, and the task (the current one unless
    given) with, `with_details`, its enhancement and agent (which may need the queue read);
    `subagent`: (agent_id, agent_type) of the subagent calling, when known."""
    agent, problem = None, None
    if task_id:
        try:
            task = QueueService(project).get(task_id)
            enhancement, agent = enhancement_of(task), task.get("assigned_agent")
        except CmatError:
            enhancement = None
    else:
        task = current_task(project, details=with_details)
        task_id, enhancement, agent, problem = (task.task_id, task.enhancement, task.agent,
                                                task.problem)
    return Context(project, zone(config.timezone), now, session_id, task_id,
                   enhancement, agent if isinstance(agent, str) and agent else None, *subagent,
                   problem=problem)


def all_statuses(project: Path, ledger: Ledger, now: float, session_id: str | None = None
                 ) -> tuple[Config, Context, list[Status]]:
    """Every budget that applies in `project` (each task and enhancement budget included),
    with what it has spent."""
    config = load_config(project)
    context = current_context(project, config, now, session_id)
    return config, context, evaluate(ledger, applicable(config, context, every_key=True),
                                     context, config)


def status_report(project: Path, ledger: Ledger, now: float, session_id: str | None = None
                  ) -> dict:
    """Every budget of `project` with spend, percent, reset and override state."""
    from cmat.budgets import concurrency

    config, context, statuses = all_statuses(project, ledger, now, session_id)
    if session_id is None and config.has_run_limits:
        for running in concurrency.running(ledger, config, context.now)[:10]:
            run = Context(project, context.tz, context.now, running.session_id,
                          agent=running.agent)  # a run under way, against its limit
            statuses += evaluate(ledger, run_budgets(config, run), run, config)
    return {
        "timezone": context.tz.key,
        "thresholds": list(config.thresholds),
        "concurrency": concurrency.status(ledger, config, context.now),
        "budgets": [dict(s.to_json(), overridden=s.exhausted and active_override(
            ledger, s.budget, context.now)) for s in statuses],
        "overrides": ledger.overrides(context.now),
        "exhausted": any(s.exhausted for s in statuses),
        "ignored": config.ignored + [w for w in [override_env_warning()] if w],
    }
