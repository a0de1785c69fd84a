"""`cmat estimate`: what the next task will cost, from the user's own past tasks, and what a
prompt will cost to send, from a token count calibrated on the user's own transcripts."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cmat.catalog import ModelService
from cmat.ledger import Ledger
from cmat.pricing import request_cost, stored_cost
from cmat.stats import percentile
from cmat.untrusted import Unreadable, read_untrusted
from cmat.usage import TokenCounts

ENOUGH_TASKS = 5  # fewer past tasks than this: the match is widened, and that is said
DEFAULT_CHARS_PER_TOKEN = 3.5  # without enough of the user's own requests to measure it
MIN_SAMPLES = 5
MIN_SAMPLE_CHARS = 200  # less text than this is lost in the noise of the counts
CALIBRATION_FILES = 40  # the most recent transcripts read to measure characters per token
CALIBRATION_BYTES = 64 * 2**20
DEFAULT_OUTPUT_TOKENS = 1000


@dataclass
class TaskEstimate:
    match: dict  # what the past tasks were matched on, after any widening
    tasks: int
    median_usd: float | None
    p90_usd: float | None
    model: str | None = None  # the model the tasks were priced again on
    model_median_usd: float | None = None
    model_p90_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def estimate_task(ledger: Ledger, models: ModelService, agent: str | None = None,
                  task_type: str | None = None, enhancement: str | None = None,
                  model: str | None = None) -> TaskEstimate:
    """The median and 90th percentile cost of past tasks like this one; where fewer than
    ENOUGH_TASKS match, the match is widened (enhancement, then task type, then agent left
    out) and the estimate says so. Also those tasks priced again on `model` (else the
    catalog's default model)."""
    asked = {"agent": agent, "task_type": task_type, "enhancement": enhancement}
    _check_known(ledger, asked)
    tries = [dict(asked), dict(asked, enhancement=None), dict(asked, enhancement=None,
                                                                task_type=None),
             {"agent": None, "task_type": None, "enhancement": None}]
    notes, rows, match = [], [], asked
    for attempt in tries:
        if rows and attempt == match:
            continue
        found = ledger.task_costs_by(attempt["agent"], attempt["task_type"],
                                     attempt["enhancement"])
        if len(found) > len(rows):
            rows, match = found, attempt
        if len(rows) >= ENOUGH_TASKS:
            break
    if match != asked:
        dropped = [name for name, value in asked.items() if value and not match[name]]
        notes.append(f"only a few past tasks match {match_words(asked)}: widened to "
                     f"{match_words(match)} by leaving out {', '.join(dropped)}")
    if not rows:
        return TaskEstimate(match, 0, None, None, notes=notes + [
            "no past task in the ledger: record tasks (cmat costs extract, or the hooks with "
            "a current task) and estimates follow"])
    if len(rows) < ENOUGH_TASKS:
        notes.append(f"thin history: {len(rows)} past task{'' if len(rows) == 1 else 's'};"
                     " the figures say little yet")
    costs = [row[1] for row in rows]
    estimate = TaskEstimate(match, len(rows), percentile(costs, 0.5), percentile(costs, 0.9),
                            notes=notes)
    if any(row[-1] < row[-2] for row in rows):
        notes.append("some past requests are of models the catalog does not price: the "
                     "figures leave them out")
    entry = models.get_by_pattern(model) if model else models.get_default()
    if entry is None:
        notes.append(f"model {model!r} is not in the catalog: no re-priced figure")
        return estimate
    per_task: dict[str, float] = {row[0]: 0.0 for row in rows}
    for task_id, _, ts, *tokens, searches, _speed, geo in ledger.task_requests(list(per_task)):
        per_task[task_id] += stored_cost(entry, ts, TokenCounts(*tokens), searches, None, geo)
    estimate.model = entry.id
    estimate.model_median_usd = percentile(list(per_task.values()), 0.5)
    estimate.model_p90_usd = percentile(list(per_task.values()), 0.9)
    return estimate


def estimate_for_task(ledger: Ledger, models: ModelService, project: Path,
                      task_id: str | None) -> tuple[str, TaskEstimate] | None:
    """The estimate of a task about to run (`task_id`, else the current one), from its agent,
    task type and enhancement in the queue: (its id, the estimate); None without a task. A
    task the queue lacks raises NotFound."""
    from cmat.tasks.queue import QueueService, current_context, enhancement_of, task_type_of

    task_id = task_id or current_context(project).task_id
    if task_id is None:
        return None
    task = QueueService(project).get(task_id)
    agent = task.get("assigned_agent") if isinstance(task.get("assigned_agent"), str) else None
    return task_id, estimate_task(ledger, models, agent, task_type_of(task),
                                  enhancement_of(task))


def _check_known(ledger: Ledger, asked: dict) -> None:
    """A value no past task has (a typo, most often) is an error that names the values there
    are, not a reason to widen the match in silence."""
    import difflib

    from cmat.errors import UsageError

    for name, value in asked.items():
        if value is None or ledger.task_costs_by(**{**dict.fromkeys(asked), name: value}):
            continue
        known = ledger.task_values(name)
        if not known:
            continue  # no task at all yet: the estimate says so
        close = difflib.get_close_matches(value, known, n=3, cutoff=0.5)
        raise UsageError(f"no past task has {name.replace('_', ' ')} {value!r}"
                         + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                         f"known: {', '.join(known[:20])}")


def match_words(match: dict) -> str:
    """What a match asks for, in words: "agent implementer, task type fix"."""
    said = [f"{name.replace('_', ' ')} {value}" for name, value in match.items() if value]
    return ", ".join(said) if said else "all tasks"


# --- prompts -----------------------------------------------------------------------------------


@dataclass
class Calibration:
    chars_per_token: float
    samples: int  # requests it was measured on
    basis: str


def calibrate(transcripts: list[Path]) -> Calibration:
    """Characters per token of the user's own prompts: where a transcript shows what was
    added between two requests (user text and tool results) and how many input tokens the
    second request grew by beyond the first one's output, the two are set side by side. The
    median of those ratios, so that a request whose output count Claude Code did not finish
    writing (older versions) or an image does not sway it."""
    import orjson

    ratios: list[float] = []
    read = 0
    recent = sorted(transcripts, key=_mtime, reverse=True)[:CALIBRATION_FILES]
    for path in recent:
        if path.parent.name == "subagents" or read > CALIBRATION_BYTES:
            continue
        try:
            data = read_untrusted(path, CALIBRATION_BYTES)
        except Unreadable:
            continue
        if data is None:
            continue
        read += len(data)
        previous = None  # (prompt tokens, output tokens) of the last response
        current_id, pending = None, 0
        for line in data.splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or entry.get("isSidechain"):
                continue
            message = entry.get("message")
            if not isinstance(message, dict):
                continue
            if entry.get("type") == "user":
                pending += _text_length(message.get("content"))
                continue
            usage = message.get("usage")
            if entry.get("type") != "assistant" or not isinstance(usage, dict):
                continue
            prompt = sum(int(usage.get(k) or 0) for k in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
            output = int(usage.get("output_tokens") or 0)
            if message.get("id") == current_id:  # the same response, its output grown
                previous = (previous[0], output) if previous else (prompt, output)
                continue
            if previous and pending >= MIN_SAMPLE_CHARS:
                grown = prompt - previous[0] - previous[1]
                if grown > 0:
                    ratios.append(pending / grown)
            current_id, previous, pending = message.get("id"), (prompt, output), 0
    if len(ratios) < MIN_SAMPLES:
        return Calibration(DEFAULT_CHARS_PER_TOKEN, len(ratios),
                           f"{DEFAULT_CHARS_PER_TOKEN} characters a token (a common figure for "
                           f"English and code: too few of your own requests to measure it)")
    ratio = min(max(percentile(ratios, 0.5), 1.5), 8.0)
    return Calibration(ratio, len(ratios),
                       f"{ratio:.2f} characters a token, the median over {len(ratios)} of your "
                       "own requests: text added between two requests against the tokens the "
                       "prompt grew by, so what Claude Code adds around a message counts too")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _text_length(content) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_text_length(block.get("text") or block.get("content"))
                   for block in content if isinstance(block, dict))
    return 0


def estimate_prompt(text: str, models: ModelService, calibration: Calibration,
                    model: str | None = None, output_tokens: int | None = None,
                    typical_output: float | None = None) -> dict:
    """The tokens of `text` and the cost of sending it once, uncached, to `model` (else the
    default model), with `output_tokens` of answer (else the user's median response)."""
    entry = models.get_by_pattern(model) if model else models.get_default()
    if entry is None:
        from cmat.errors import NotFound

        raise NotFound(f"model {model!r} is not in the catalog", "see: cmat models list")
    tokens = math.ceil(len(text) / calibration.chars_per_token)
    if output_tokens is None:
        output_tokens = int(typical_output) if typical_output else DEFAULT_OUTPUT_TOKENS
        output_basis = ("the median response of your last 1,000 requests" if typical_output
                        else f"{DEFAULT_OUTPUT_TOKENS} tokens, as no history says otherwise")
    else:
        output_basis = "as given"
    pricing = entry.pricing_on(time.strftime("%Y-%m-%d", time.gmtime()))
    input_usd = request_cost(pricing, TokenCounts(input=tokens))
    output_usd = request_cost(pricing, TokenCounts(input=tokens, output=output_tokens)) - \
        input_usd  # a long prompt's tier prices the output too
    return {"characters": len(text), "tokens": tokens, "model": entry.id,
            "model_name": entry.name, "input_usd": input_usd, "output_tokens": output_tokens,
            "output_basis": output_basis, "output_usd": output_usd,
            "total_usd": input_usd + output_usd,
            "chars_per_token": calibration.chars_per_token, "calibration": calibration.basis,
            "approximate": True}
