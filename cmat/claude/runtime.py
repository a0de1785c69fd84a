"""What runs inside Claude Code: `cmat hook EVENT` (the events are in events.py).

Claude Code sends the hook's input as JSON on stdin. A recording hook takes the session into
the ledger, attributed to the current task if there is one (attribution.attribute_session); a budget
hook refuses a prompt or denies a tool call once a budget is spent.

A hook must never break the user's session: it always exits 0, gives up well inside the timeout
Claude Code was given (events.HookEvent.time_limit), and writes every failure, with a timestamp,
to the hook log (log.py), printing at most one short line to stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from cmat import clock
from cmat.claude import headroom
from cmat.claude.events import BY_COMMAND, CHECKS_BUDGETS, GUARDS_SETTINGS, RECORDS
from cmat.claude.log import HookLog
from cmat.claude.payload import PayloadError, payload_project, read_payload
from cmat.errors import CmatError
from cmat.money import usd
from cmat.text import one_line
from cmat.untrusted import Unreadable, open_untrusted

HEADROOM_MAX_AGE_SECONDS = 3600  # a cache older than this is checked in full again
# Under a concurrency or run limit, a session at work is recorded so by a full check at least
# this often: what `cmat budget status` and `cmat live` show of it is never staler.
AT_WORK_REFRESH_SECONDS = 60
HOOK_MAX_BYTES = 8 * 2**30  # ~10 s of reading: a larger session is left to `cmat scan`
LEDGER_WAIT_SECONDS = 2.0  # a budget check never waits longer for a busy ledger
LEDGER_BUSY_SECONDS = 10.0  # a recording hook's wait for a busy ledger, well inside its 25 s
FLUSH_WAIT_SECONDS = (0.05, 0.1, 0.2)  # SubagentStop may fire before the last line is flushed

class HookTimeout(Exception):
    pass


class HookInputError(Exception):
    """The payload lacks what the hook needs."""


class Spooled(Exception):
    """The ledger could not be written in time: the attribution was kept to apply later."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Abort the block with HookTimeout after `seconds` (main thread, POSIX)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(_signum, _frame):
        raise HookTimeout(f"gave up after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def time_limit(event: str) -> float:
    """Seconds the hook may run (CMAT_HOOK_BUDGET overrides, for slow machines and tests)."""
    try:
        return float(os.environ.get("CMAT_HOOK_BUDGET", BY_COMMAND[event].time_limit))
    except ValueError:
        return BY_COMMAND[event].time_limit


def say(text: str) -> None:
    """One line on stderr, for Claude Code to show: it may name a repository's paths or a
    queue's problem, so every control character in it is shown as an escape."""
    print("cmat: " + one_line(text), file=sys.stderr)


def _path_field(payload: dict, key: str, required: bool) -> Path | None:
    value = payload.get(key)
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    if required:
        raise HookInputError(f"payload has no {key!r}")
    return None


def _max_bytes() -> int:
    """How much transcript a recording hook reads at most (CMAT_HOOK_MAX_BYTES)."""
    try:
        return int(os.environ.get("CMAT_HOOK_MAX_BYTES", HOOK_MAX_BYTES))
    except ValueError:
        return HOOK_MAX_BYTES


def _wait_for_flush(path: Path) -> None:
    for pause in FLUSH_WAIT_SECONDS:
        try:
            handle = open_untrusted(path)
            if handle is None:
                return  # missing: the read reports it
            with handle:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) == b"\n":
                    return
        except (OSError, Unreadable):
            return  # empty, or not a transcript at all: the read reports it
        time.sleep(pause)


def _text_field(payload: dict, key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


def attribute(event: str, payload: dict, project: Path, log: HookLog) -> tuple[str, None]:
    """Import and attribute the session named by `payload` (the one road into the ledger,
    attribution.attribute_session); returns a one-line summary for the log. Where the ledger
    cannot be written in time, the attribution is spooled for the next hook or scan."""
    import sqlite3

    from cmat import spool
    from cmat.attribution import apply_spool, attribute_session, session_of
    from cmat.catalog import ModelService
    from cmat.catalog.load import unannounced_notes
    from cmat.errors import LedgerError, NotFound
    from cmat.ledger import Ledger
    from cmat.tasks.queue import NO_TASK, QueueService, current_context
    from cmat.transcripts.files import subagent_source

    session_id = _text_field(payload, "session_id")
    subagent = None
    if event == "subagent-stop":
        agent_path = _path_field(payload, "agent_transcript_path", required=True)
        _wait_for_flush(agent_path)
        subagent = subagent_source(agent_path, _text_field(payload, "agent_type"))
        transcript = _path_field(payload, "transcript_path", required=False)
        session_id = session_id or session_of(agent_path, None)
    else:
        transcript = _path_field(payload, "transcript_path", required=True)
        session_id = session_id or session_of(transcript, None)
    context = current_context(project)
    if context.problem:
        log.write("WARN", event, f"session {session_id}: {context.problem}; recorded untracked")
    if context.task_id:
        queue = QueueService(project)
        try:
            queue.get(context.task_id)
        except NotFound:
            log.write("WARN", event, f"session {session_id}: task {context.task_id} is not in "
                                     f"{queue.path}; recorded as untracked")
            context = NO_TASK
        except CmatError as exc:  # the ledger is the truth: the queue catches up later
            log.write("WARN", event, f"session {session_id}: queue unreadable ({exc})")
    models = ModelService(project)
    for note in unannounced_notes(models.catalog):
        log.write("WARN", event, note)
    try:
        with Ledger(busy_timeout=min(LEDGER_BUSY_SECONDS, time_limit(event) * 0.4)) as ledger:
            applied, problems = apply_spool(ledger)
            for problem in problems:
                log.write("WARN", event, f"spooled attribution not applied yet: {problem}")
            attribution = attribute_session(project, ledger, models, transcript, session_id,
                                            context, event, subagent, _max_bytes())
            if event == "session-end" and session_id:
                with ledger.transaction():  # its slot under the concurrency limit is free
                    ledger.end_live_session(session_id, clock.now())
                headroom.forget_session(session_id)
                _auto_sync(project)
                if context.task_id:
                    _settle_queue(project)
    except (LedgerError, sqlite3.OperationalError) as exc:
        kept = spool.keep(spool.Pending(
            str(project), session_id, str(transcript) if transcript else None, context.task_id,
            context.enhancement, context.agent, event,
            str(subagent.path) if subagent else None, subagent.agent if subagent else None,
            context.task_type))
        raise Spooled(f"ledger not written ({exc}); the attribution waits in {kept} for "
                      "the next hook or scan") from None
    task_note = f"task {context.task_id}" if context.task_id else "untracked"
    if attribution.queue_lagging:
        where = log.write("ERROR", event, f"session {session_id}: the queue of "
                                          f"{project} could not be written; tasks "
                                          f"{', '.join(attribution.queue_lagging)} catch up later")
        task_note += " (queue not updated)"
        say(f"cost recorded, but the task queue was not updated; see {where}")
    return (f"session {session_id} -> {task_note}: {usd(attribution.total_usd)} over "
            f"{attribution.requests} request{'s' * (attribution.requests != 1)}"
            f" ({attribution.new_requests} new)"
            + (f", {applied} spooled applied" if applied else "")), None


SETTLE_SECONDS = "2,8"  # when the queue is written again after a SessionEnd


def _settle_queue(project: Path) -> None:
    """CMAT's own SessionEnd hook runs beside cmat's and writes CMAT's figure into the queue,
    often last: a detached `cmat costs sync --settle` writes cmat's again a little later, so
    the queue shows cmat's figure without waiting for the next session."""
    from cmat.detached import start_detached

    start_detached(["cmat", "costs", "sync", "--project", str(project), "--settle",
                    SETTLE_SECONDS])


def _auto_sync(project: Path) -> None:
    """`team.auto_sync`: a detached `cmat sync`, so that the hook never waits on the network."""
    from cmat.budgets.config import load_config

    config = load_config(project)
    if not config.auto_sync or not config.team_database:
        return
    from cmat.detached import start_detached

    start_detached(["cmat", "sync", "--quiet", "--no-scan"], cwd=project)


def check_budgets(event: str, payload: dict, project: Path,
                  log: HookLog) -> tuple[str | None, dict | None]:
    """Block the prompt or deny the tool call when a budget is exhausted; raise alerts.

    Returns (a log line or None, the JSON answer for Claude Code or None to allow silently).
    """
    from cmat.budgets.config import load_config

    config = load_config(project)
    if event == "prompt-submit":
        for note in config.ignored:
            log.write("WARN", event, note)
    if not config.has_budgets:
        return None, None  # the common case: nothing to check, nothing to read
    from cmat.budgets import concurrency
    from cmat.budgets.alerts import fire, has_undelivered, spawn_delivery
    from cmat.budgets.limits import (
        active_override,
        applicable,
        counts_claude_code,
        current_context,
        evaluate,
        overridden,
        override_env_warning,
    )
    from cmat.catalog import ModelService
    from cmat.errors import TranscriptError
    from cmat.ingest import import_session
    from cmat.ledger import Ledger

    session_id = payload.get("session_id") if isinstance(payload.get("session_id"), str) else None
    if event == "pre-tool-use":
        from cmat.claude.own_files import denied_call

        denied = denied_call(payload)
        if denied:  # whatever the budgets' state: an agent may not edit what holds it
            return f"session {session_id}: denied: {denied}", refusal(event, denied)
    # The queue is read only when a budget needs the task's enhancement or agent.
    details = "enhancement" in config.keyed or config.has_run_limits
    subagent = (_text_field(payload, "agent_id"), _text_field(payload, "agent_type"))
    context = current_context(project, config, clock.now(), session_id,
                              with_details=details, subagent=subagent)
    if context.problem:  # task budgets cannot apply; every other budget still does
        log.write("WARN", event, f"{context.problem}; task budgets not checked")
        say(f"{context.problem}; task budgets not checked")
    budgets = applicable(config, context)
    # Sessions at work are tracked for the concurrency limit and for `budget status`'s runs.
    tracks = session_id is not None and config.tracks_sessions
    if not budgets and not tracks:
        return None, None
    transcript = _path_field(payload, "transcript_path", required=False)
    held = None
    with Ledger(busy_timeout=LEDGER_WAIT_SECONDS) as ledger:
        models = ModelService(project)
        if transcript and session_id:
            try:
                import_session(ledger, models, transcript, session_id)
            except TranscriptError as exc:
                # Not written yet (a session's first prompt), or not a transcript at all:
                # this session has spent nothing cmat can see; every budget is still checked.
                if transcript.exists() or transcript.is_symlink():
                    log.write("WARN", event, f"session {session_id}: {exc}; counted as $0")
        version = ledger.version()  # before the sums: a row written after is counted again
        if tracks:
            held = concurrency.admit(
                ledger, config, session_id, str(project), context.agent,
                str(transcript) if transcript else None, context.now,
                may_hold=event == "prompt-submit"
                and not overridden(ledger, "concurrent-agents", context.now))
        statuses = evaluate(ledger, budgets, context, config)
        # Every budget is watched (alerts); only those Claude Code's spend counts deny.
        exhausted = [s for s in statuses if s.exhausted and counts_claude_code(s.budget)]
        blocking = [s for s in exhausted if not active_override(ledger, s.budget, context.now)]
        alerts = fire(ledger, statuses, config, context.now)
        undelivered = config.channels and (alerts or has_undelivered(ledger, context.now))
        if undelivered:
            spawn_delivery()
        quiet = not (held or exhausted or alerts or undelivered or context.problem
                     or os.environ.get("CMAT_OVERRIDE_LIMIT", "").strip())
        # Under a run limit each run (the main thread, a subagent's) has a limit of its own,
        # and so a cache of its own.
        run = subagent[0] if config.has_run_limits else None
        remembered = _headroom(ledger, models, config, project, payload, statuses, version,
                               context.now, run) if session_id and transcript and quiet else None
    if remembered is not None:
        headroom.write(remembered)
    elif session_id:
        headroom.forget(session_id, run)
    if held is not None:
        reason = concurrency.held_message(held, config, context.now)
        return f"session {session_id}: held ({len(held)} at work)", {
            "decision": "block", "reason": reason}
    notes = [alert.message for alert in alerts]
    warning = override_env_warning()
    if warning and event == "prompt-submit":
        notes.append(f"cmat: {warning}")
    if event == "prompt-submit" and exhausted and not blocking:
        notes.append("cmat: over budget, allowed by an override: "
                     + "; ".join(f"{s.budget.label} {s.amount(s.spent)} of "
                                 f"{s.amount(s.budget.limit)}" for s in exhausted))
    answer: dict = {}
    if blocking:
        reason = "\n\n".join(status.exhausted_message() for status in blocking)
        # What the user reads (a refused prompt's reason, a refused tool call's message)
        # also names the way on for now; the reason Claude reads does not.
        for_the_user = f"{reason}\n{OVERRIDE_HINT}"
        if event == "prompt-submit":
            answer = refusal(event, for_the_user)
        else:
            answer = refusal(event, reason)
            notes.insert(0, for_the_user)
    if notes:
        answer["systemMessage"] = "\n".join(notes)
    line = None
    if blocking or alerts:
        line = (f"session {session_id}: "
                + ("blocked by " + ", ".join(s.budget.key for s in blocking) if blocking
                   else "allowed")
                + (f"; alerts {', '.join(f'{a.status.budget.key}@{a.threshold}%' for a in alerts)}"
                   if alerts else ""))
    return line, answer or None


def _headroom(ledger, models, config, project: Path, payload: dict, statuses: list,
              version: int, now: float, agent: str | None) -> dict | None:
    """The headroom cache (cmat.claude.headroom) of a full check that allowed without a
    word: the distance of the nearest budget to its next alert threshold or its limit, and
    what the check read; None when a budget is too near. Where sessions at work are
    tracked (a concurrency or run limit), it answers for AT_WORK_REFRESH_SECONDS at most,
    well inside `active_minutes`: the session this check recorded at work stays so, as if
    every call had recorded it (and a prompt of a session at work is never held). Under a
    run limit it answers the calls of one run only: the main thread's, or the subagent
    `agent`'s."""
    usd = tokens = float("inf")
    expires = now + (min(AT_WORK_REFRESH_SECONDS, config.active_minutes * 30)
                     if config.tracks_sessions else HEADROOM_MAX_AGE_SECONDS)
    for status in statuses:
        percent = min((t for t in config.all_thresholds if status.percent < t), default=100)
        distance = status.budget.limit * min(percent, 100) / 100 - status.spent
        if status.budget.unit == "usd":
            usd = min(usd, distance)
        else:
            tokens = min(tokens, distance)
        if status.reset_at is not None:
            expires = min(expires, status.reset_at.timestamp())
    if usd <= 0 or tokens <= 0:
        return None
    session_id, transcript = payload["session_id"], payload["transcript_path"]
    path = Path(transcript).expanduser()
    reading = session_reading(ledger, project, path, session_id)
    if reading is None:
        return None
    sources, files = reading
    return {
        "project": os.environ.get("CLAUDE_PROJECT_DIR", ""), "session": session_id,
        "transcript": transcript, "expires": expires,
        # A prompt's check also notes what a project file set that was ignored.
        "events": ("pre-tool-use",) + (() if config.ignored else ("prompt-submit",)),
        "files": files,
        "environment": headroom.environment(),
        "sources": sources,
        "ledger": str(ledger.path), "version": version, "ledger_id": ledger.ledger_id(),
        "sessions_matter": bool({"task", "enhancement"} & set(config.keyed)),
        "usd": usd, "tokens": tokens, "count_all_tokens": config.token_count == "all",
        "per_run": config.has_run_limits, "agent": agent,
        "prices": headroom.price_bounds(models.catalog)}


def guard_settings(event: str, payload: dict, project: Path,
                   log: HookLog) -> tuple[str | None, dict | None]:
    """ConfigChange: keep a settings change that would stop the budget checks out of the
    session while a budget is set (cmat.claude.settings_guard)."""
    from cmat.budgets.config import load_config
    from cmat.claude.settings_guard import refused_change

    if not load_config(project).has_budgets:
        return None, None
    reason = refused_change(project, payload.get("source"), payload.get("file_path"))
    if reason is None:
        return None, None
    return (f"session {payload.get('session_id')}: settings change kept out: {reason}",
            refusal(event, reason))


def session_reading(ledger, project: Path, path: Path, session_id: str
                    ) -> tuple[list[tuple], list[tuple]] | None:
    """What a cache of a session's figures must watch (cmat.claude.headroom, statuscache):
    how far the ledger read each of its files, (path, offset, inode); and the fingerprint of
    every file the figures depend on (configs, catalogs, the task marker and queue, the team
    cache, the session's folders). None when a file of the session could not be read yet."""
    from cmat import paths
    from cmat.transcripts.files import session_sources

    sources = [str(source.path) for source in session_sources(path, session_id)]
    states = ledger.file_states(sources)
    if set(states) != set(sources):
        return None
    watched = [paths.user_config_file(), paths.project_config_file(project),
               paths.user_catalog(), paths.project_catalog(project), paths.bundled_catalog(),
               paths.current_task_file(project), paths.queue_file(project),
               paths.team_cache(), path.parent,
               path.parent / path.stem / "subagents", path.parent / session_id / "subagents"]
    return ([(p, states[p].offset, states[p].inode) for p in sources],
            [headroom.fingerprint(str(p)) for p in watched])


OVERRIDE_HINT = "Or let work go on for a while: cmat budget override --for 1h"


def refusal(event: str, reason: str) -> dict:
    """Claude Code's answer that stops a prompt (UserPromptSubmit), a settings change
    (ConfigChange) or a tool call."""
    if event in ("prompt-submit", "config-change"):
        return {"decision": "block", "reason": reason}
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                   "permissionDecisionReason": reason}}


def failed_check_answer(event: str, project: Path | None, what: str, where: Path) -> dict:
    """The answer of a budget check that could not finish: a refusal where the user chose
    `on_error = "deny"`, else a warning Claude Code shows (never a silent pass)."""
    from cmat.budgets.config import on_error_policy

    settings = event == "config-change"
    checked = "this settings change" if settings else "your budgets"
    if on_error_policy(project or Path.cwd()) == "deny":
        return refusal(event, f"cmat could not check {checked} ({what}; see {where}), and "
                              "budgets.on_error is \"deny\". Fix the cause, or run "
                              "'cmat budget override --for 10m'.")
    return {"systemMessage": f"cmat: {'settings change' if settings else 'budgets'} NOT "
                             f"checked ({what}; see {where}). Set "
                             "budgets.on_error = \"deny\" to stop instead."}


def run(event: str, stdin=None) -> int:
    """Entry point of every hook: always returns 0 (a block is an answer on stdout)."""
    started = time.monotonic()
    log = HookLog()
    project = None
    try:
        with deadline(time_limit(event)):
            payload = read_payload(sys.stdin if stdin is None else stdin)
            project = payload_project(payload)
            log = HookLog(project)
            handler = HANDLERS[BY_COMMAND[event].kind]
            summary, answer = handler(event, payload, project, log)
        if answer:
            sys.stdout.write(orjson.dumps(answer).decode() + "\n")
            sys.stdout.flush()
        if summary:
            log.write("INFO", event, f"{summary} in {time.monotonic() - started:.3f} s")
    except Exception as exc:  # a cost bug must never become the user's hook error
        import traceback

        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        where = log.write("ERROR", event, detail.replace("\n", " | "))
        if not isinstance(exc, (PayloadError, HookInputError, HookTimeout, Spooled)) \
                and _is_bug(exc):
            log.write("ERROR", event, "traceback: " + "".join(
                traceback.format_exception(exc)).replace("\n", " | "))
        with contextlib.suppress(Exception):
            what = "cost kept for the next hook or scan" if isinstance(exc, Spooled) \
                else BY_COMMAND[event].failure
            say(f"{what} ({type(exc).__name__}); see {where}")
        if BY_COMMAND[event].needs_budgets:
            with contextlib.suppress(Exception):
                answer = failed_check_answer(event, project, type(exc).__name__, where)
                sys.stdout.write(orjson.dumps(answer).decode() + "\n")
                sys.stdout.flush()
    return 0


HANDLERS = {RECORDS: attribute, CHECKS_BUDGETS: check_budgets, GUARDS_SETTINGS: guard_settings}


def _is_bug(exc: Exception) -> bool:
    return not isinstance(exc, CmatError)
