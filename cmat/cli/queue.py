"""`cmat queue ...`: just enough of a CMAT task queue to use cmat without CMAT."""

from __future__ import annotations

import re
from pathlib import Path

import click

from cmat import paths
from cmat.cli.options import output_options, project_option
from cmat.cli.output import echo, emit_json, field_text, table
from cmat.money import usd
from cmat.tasks.queue import (
    DEFAULT_TASK_TYPE,
    PRIORITIES,
    STATUSES,
    TASK_TYPES,
    QueueService,
    enhancement_of,
)
from cmat.untrusted import Unreadable


def _queue(project: Path | None) -> QueueService:
    service = QueueService(paths.project_dir(project))
    try:
        stale = service.clear_stale_marker()
    except Unreadable as exc:  # not cmat's to remove; the hooks refuse it the same way
        echo(f"cmat: note: current-task marker refused, so no task is current: {exc}",
             err=True)
        return service
    if stale:
        echo(f"cmat: note: {stale} is no longer active; it is not the current task any "
             "more", err=True)
    return service


@click.group()
def queue() -> None:
    """A CMAT task queue (.claude/data/task_queue.json): add, list, show, status, start, finish.

    Works on CMAT's own queue, or makes a minimal one in a project without CMAT. Tasks it
    adds are tasks CMAT can run (one of CMAT's task types; in a CMAT project, one of its
    agents). A current-task marker whose task was finished elsewhere is cleared on the way.
    """



# What CMAT's own `queue add` takes after the title, in its order (cmat.sh, and CMAT's docs).
CMAT_ADD_ORDER = ("agent", "priority", "task-type", "source", "description", "auto-complete",
                  "auto-chain", "enhancement")


@queue.command()
@click.argument("title")
@click.argument("cmat_order", nargs=-1,
                metavar="[AGENT PRIORITY TYPE SOURCE DESCRIPTION [AUTO_COMPLETE AUTO_CHAIN "
                        "ENHANCEMENT]]")
@click.option("--enhancement", help="Enhancement the task belongs to (default: NAME of a "
                                    "SOURCE in enhancements/NAME/).")
@click.option("--agent", help="Agent the task is assigned to.")
@click.option("--id", "task_id", help="Task id (default: task_<unix time>_<5 digits>).")
@click.option("--priority", type=click.Choice(PRIORITIES), help="[default: normal]")
@click.option("--task-type", type=click.Choice(TASK_TYPES),
              help=f"CMAT's task type: which prompt template CMAT runs it with.  [default: "
                   f"{DEFAULT_TASK_TYPE}]")
@click.option("--description", help="Longer description of the task.")
@click.option("--auto-chain", "auto_chain_flag", is_flag=True,
              help="CMAT goes on to the workflow's next step when the task completes.")
@click.option("--model", metavar="ID", help="The model CMAT is to run the task on (its "
                                            "metadata's requested_model).")
@project_option
def add(title: str, cmat_order: tuple[str, ...], enhancement: str | None, agent: str | None,
        task_id: str | None, priority: str | None, task_type: str | None,
        description: str | None, auto_chain_flag: bool, model: str | None,
        project: Path | None) -> None:
    """Add a pending task and print its id.

    After TITLE, what CMAT's own `queue add` takes, in its order (AUTO_COMPLETE and
    AUTO_CHAIN: true or false), or the same as options. CMAT v10's shorter form, `queue add
    AGENT TITLE SOURCE [--auto-chain] [--model ID]` (in a CMAT project, AGENT one of its
    agents), makes the task CMAT v10 makes: of the task type the agent's role gives it,
    completed by CMAT on success, the title its description.

    In a CMAT project (.claude/agents/ present) the agent must be one of its agents, so that
    CMAT can run the task.
    """
    if len(cmat_order) > len(CMAT_ADD_ORDER):
        raise click.UsageError(f"{len(cmat_order)} arguments after the title: CMAT's order has "
                               f"{len(CMAT_ADD_ORDER)} ({' '.join(CMAT_ADD_ORDER).upper()})")
    service = _queue(project)
    # CMAT v10's AGENT TITLE SOURCE: in its project, led by one of its agents, and no
    # priority where cmat.sh's order has one.
    if len(cmat_order) == 2 and cmat_order[1] not in PRIORITIES \
            and title in (service.agents() or ()):
        v10_agent, (title, source) = title, cmat_order
        given = {"agent": v10_agent, "source": source, "auto-complete": "true",
                 "task-type": task_type or service.cmat_task_type(v10_agent),
                 "description": description or title}
    else:  # an empty argument, as CMAT's scripts pass for what they leave out: none
        given = {name: value for name, value in zip(CMAT_ADD_ORDER, cmat_order) if value}
    if auto_chain_flag:
        given["auto-chain"] = _one_of("auto-chain", given.get("auto-chain"), "true")
    source = given.get("source") or None
    named = re.fullmatch(r"enhancements/([^/]+)/.+", source or "")
    task = service.add(
        title, task_id=task_id, agent=_one_of("agent", given.get("agent"), agent),
        enhancement=_one_of("enhancement", given.get("enhancement"), enhancement)
        or (named.group(1) if named else None),
        priority=_one_of("priority", given.get("priority"), priority) or "normal",
        task_type=_one_of("task-type", given.get("task-type"), task_type) or DEFAULT_TASK_TYPE,
        description=_one_of("description", given.get("description"), description) or "",
        source_file=source, auto_complete=_true_or_false(given.get("auto-complete")),
        auto_chain=_true_or_false(given.get("auto-chain")), model=model)
    echo(task["id"])


def _true_or_false(value: str | None) -> bool:
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise click.UsageError(f"AUTO_COMPLETE and AUTO_CHAIN are true or false, not {value!r}")


@queue.command("list")
@click.argument("status_given", metavar="[STATUS]", required=False,
                type=click.Choice([*STATUSES, "all"]))
@click.option("--status", type=click.Choice(STATUSES), help="Only tasks with this status.")
@click.option("--enhancement", help="Only tasks of this enhancement.")
@project_option
@output_options
def list_tasks(status_given: str | None, status: str | None, enhancement: str | None,
               project: Path | None, as_json: bool) -> None:
    """The tasks in the queue, oldest first, with what each cost (from the ledger).

    STATUS, as CMAT's `queue list` takes it (`all`: every task), is the same as --status.
    """
    status = _one_of("status", None if status_given == "all" else status_given, status)
    queue = _queue(project)
    tasks = queue.tasks(status=status, enhancement=enhancement)
    if as_json:
        emit_json(tasks)
        return
    if not tasks:
        echo("No tasks.")
        return
    from cmat.catalog import ModelService
    from cmat.cli.costs import say_not_counted
    from cmat.ledger import Ledger
    from cmat.tasks.costs import import_legacy

    with Ledger() as ledger:
        # Figures CMAT's own hook wrote count here as in `cmat costs show`, from the first look.
        left_out = import_legacy(queue.project, ledger, ModelService(queue.project))
        spent = {task_id: cost for task_id, _, cost in ledger.task_costs()}
    rows = [[t.get("id"), (t.get("title") or "")[:50], t.get("status") or "-",
             enhancement_of(t) or "-", t.get("assigned_agent") or "-",
             usd(spent[t.get("id")]) if t.get("id") in spent else "-"] for t in tasks]
    echo(table(rows, ["Id", "Title", "Status", "Enhancement", "Agent", "Cost"],
               numeric_from=5))
    say_not_counted([left_out.get(task.get("id")) for task in tasks])


@queue.command()
@click.argument("task_id")
@project_option
@output_options
def show(task_id: str, project: Path | None, as_json: bool) -> None:
    """One task, with all its fields."""
    task = _queue(project).get(task_id)
    if as_json:
        emit_json(task)
        return
    for key, value in task.items():
        if key == "metadata" and isinstance(value, dict):
            echo("metadata:")
            for meta_key, meta_value in value.items():
                echo(f"  {meta_key}: {field_text(meta_value)}")
        else:
            echo(f"{key}: {field_text(value)}")
    echo(f"\n(what it cost, session by session: cmat costs show {task_id})")


@queue.command()
@project_option
@output_options
def status(project: Path | None, as_json: bool) -> None:
    """How many tasks have each status, and the current task (what sessions that end now
    are recorded against), as CMAT's `queue status` shows them."""
    from collections import Counter

    from cmat.tasks.queue import current_context

    queue = _queue(project)
    counts = Counter(task.get("status") for task in queue.tasks())
    # CMAT's statuses first, then any other a tool wrote.
    names = [*STATUSES, *sorted(name for name in counts
                                if isinstance(name, str) and name not in STATUSES)]
    current = current_context(queue.project).task_id
    if as_json:
        emit_json({"counts": {name: counts[name] for name in names}, "current": current})
        return
    echo(", ".join(f"{counts[name]} {name}" for name in names if counts[name]) or "No tasks.")
    echo(f"Current task: {current}" if current else
         "No current task: sessions are recorded untracked (cmat queue start TASK_ID)")


@queue.command()
@click.argument("task_id")
@project_option
def start(task_id: str, project: Path | None) -> None:
    """Mark TASK_ID active and make it the current task.

    Sessions that end while it is current are recorded against it by the SessionEnd hook
    (CMAT_CURRENT_TASK_ID, when set, takes precedence).
    """
    queue = _queue(project)
    queue.start(task_id)
    echo(f"{task_id} is active and current")


@queue.command()
@click.argument("task_id")
@click.option("--start", "start_now", is_flag=True, help="Start it again at once (and make "
                                                        "it the current task).")
@project_option
def rerun(task_id: str, start_now: bool, project: Path | None) -> None:
    """Put a completed, failed or cancelled task back to pending, as CMAT's `queue rerun`.

    Its start and end times and its result are cleared; what it cost so far stays its own,
    and the sessions it runs next add to it.
    """
    queue = _queue(project)
    queue.rerun(task_id)
    if start_now:
        queue.start(task_id)
    echo(f"{task_id} is {'active and current' if start_now else 'pending'}")


def _one_of(name: str, given: str | None, option: str | None) -> str | None:
    """A value CMAT's own commands take as an argument, and cmat's as --NAME too: either
    way, not two different ones."""
    if given is not None and option is not None and given != option:
        raise click.UsageError(f"{name} given twice: {given!r} and --{name} {option!r}")
    return given if given is not None else option


def _finish_command(name: str, status: str, summary: str) -> click.Command:
    @click.argument("task_id")
    @click.argument("result_given", metavar="[RESULT]", required=False)
    @click.option("--result", help="A short note on the outcome, stored in the task.")
    @project_option
    def finish(task_id: str, result_given: str | None, result: str | None,
               project: Path | None) -> None:
        _queue(project).finish(task_id, status, _one_of("result", result_given, result))
        echo(f"{task_id} is {status}")

    return click.command(name, help=f"{summary}\n\nRESULT, as CMAT's `queue {name}` takes it"
                         " (a status such as READY_FOR_TESTING, an error, a reason), is the same as"
                         " --result.")(finish)


queue.add_command(_finish_command("complete", "completed",
                                  "Mark TASK_ID completed; it stops being current."))
queue.add_command(_finish_command("fail", "failed", "Mark TASK_ID failed; it stops being current."))
queue.add_command(_finish_command("cancel", "cancelled",
                                  "Mark TASK_ID cancelled; it stops being current."))
