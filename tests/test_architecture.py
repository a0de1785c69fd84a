"""The shape of the package: imports run one way, down the pipeline, and what runs inside
someone's Claude Code session loads only what it needs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cmat.claude.events import EVENTS
from cmat.layers import LAYERS, layer_of
from tests.helpers import REPO, child_env, user_config
from tests.transcript_factory import TranscriptBuilder, write_session

PACKAGE = REPO / "cmat"
HEAVY = ("click", "pydantic")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The cmat modules `path` imports anywhere in it, function bodies included."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_cmat_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_bottom_of_the_pipeline_imports_nothing_from_cmat():
    graph = import_graph()
    assert graph["cmat.request"] == set()
    assert graph["cmat.usage"] == {"cmat.request"}
    assert graph["cmat.rates"] == set()
    assert graph["cmat.claude.events"] == set()


def test_only_the_command_line_imports_click():
    graph = import_graph()  # every import, `from click import x` and deferred ones included
    outside = sorted(module for module, imported in graph.items()
                     if not module.startswith("cmat.cli") and "click" in {
                         name.split(".")[0] for name in _raw_imports(module)})
    assert outside == []


def _raw_imports(module: str) -> set[str]:
    """Every module `module` imports, cmat's or not (what import_graph keeps to cmat)."""
    import ast

    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


LOADED = """
import atexit, json, sys
record = sys.argv[1]
def report():
    with open(record, "w") as out:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}), out)
atexit.register(report)
sys.argv = ["cmat", *sys.argv[2:]]
from cmat.entry import main
main()
"""


def heavy_modules_loaded(args: list[str], payload: dict, tmp_path: Path, project: Path) -> list:
    record = tmp_path / "loaded.json"
    result = subprocess.run([sys.executable, "-c", LOADED.format(heavy=HEAVY), str(record),
                             *args], input=json.dumps(payload).encode(), capture_output=True,
                            timeout=60, env=child_env(CLAUDE_PROJECT_DIR=project))
    assert result.returncode == 0, result.stderr
    return json.loads(record.read_text())


@pytest.fixture
def live_session(tmp_path, project):
    """A session with a transcript, a task in the queue and a budget: every step a hook or
    the status line can take is taken."""
    user_config("[budgets]\ndaily = 100\n[budgets.task]\ndefault = 50\n")
    builder = TranscriptBuilder(session_id="s1")
    builder.response(output=100)
    path = write_session(tmp_path / "transcripts", builder)
    task = subprocess.run([sys.executable, "-m", "cmat", "queue", "add", "t"], check=True,
                          capture_output=True, text=True, env=child_env(
                              CLAUDE_PROJECT_DIR=project)).stdout.strip()
    return {"session_id": "s1", "transcript_path": str(path), "cwd": str(project),
            "prompt": "go", "tool_name": "Bash", "tool_input": {"command": "ls"}}, task


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.command)
def test_hooks_import_neither_click_nor_pydantic(event, live_session, tmp_path, project,
                                                  monkeypatch):
    payload, task = live_session
    monkeypatch.setenv("CMAT_CURRENT_TASK_ID", task)
    payload = dict(payload, hook_event_name=event.name)
    heavy_modules_loaded(["hook", event.command], payload, tmp_path, project)  # a cold start
    assert heavy_modules_loaded(["hook", event.command], payload, tmp_path, project) == []


def test_the_status_line_imports_neither_click_nor_pydantic(live_session, tmp_path, project):
    payload, _ = live_session
    assert heavy_modules_loaded(["statusline"], payload, tmp_path, project) == []


def test_every_entry_leaves_the_collector_s_last_walk_out():
    """The `cmat` executable, `python -m cmat` and the hook scripts all start at cmat.entry:
    its exit handler freezes the objects before the interpreter's last collection (an exit
    handler registered before it runs after it)."""
    check = ("import atexit, gc; atexit.register(lambda: print(gc.get_freeze_count() > 0));"
             " import cmat.entry")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            env=child_env(), check=True)
    assert result.stdout == "True\n"


def test_the_version_is_the_packages():
    import tomllib

    from cmat import __version__

    with open(REPO / "pyproject.toml", "rb") as handle:
        assert tomllib.load(handle)["project"]["version"] == __version__


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a module into a layer above its own, and every module in no layer."""
    found = []
    for module, imported in sorted(graph.items()):
        own = layer_of(module)
        if own is None:
            found.append(f"{module}: in no layer of cmat.layers")
            continue
        for target in sorted(imported):
            if (layer_of(target) or 0) > own:
                found.append(f"{module} ({LAYERS[own][0]}) imports {target}"
                             f" ({LAYERS[layer_of(target)][0]})")
    return found


def test_every_import_points_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_import_and_a_module_left_out():
    graph = {"cmat.ingest": {"cmat.tasks.queue", "cmat.ledger"}, "cmat.ledger": set(),
             "cmat.tasks.queue": set(), "cmat.newcomer": set()}
    assert upward_imports(graph) == ["cmat.ingest (import) imports cmat.tasks.queue (tasks)",
                                     "cmat.newcomer: in no layer of cmat.layers"]


@pytest.mark.parametrize("source", ["cmat.ledger.store.Ledger", "cmat.team.reports.TeamSource"])
def test_the_ledger_and_the_team_database_each_answer_what_reports_ask(source):
    import importlib
    import inspect

    from cmat.ledger.queries.source import ReportSource

    module, _, name = source.rpartition(".")
    implementation = getattr(importlib.import_module(module), name)
    asked = [n for n, v in vars(ReportSource).items()
             if callable(v) and not n.startswith("_")]
    assert sorted(asked) == ["model_totals", "report_rows", "report_runs", "task_sessions",
                             "time_span"]
    for method in asked:
        wanted = inspect.signature(getattr(ReportSource, method))
        given = inspect.signature(getattr(implementation, method))
        assert list(given.parameters) == list(wanted.parameters), method
        assert [p.default for p in given.parameters.values()] == \
            [p.default for p in wanted.parameters.values()], method


def test_every_command_leaves_through_one_exit_helper():
    """Exit codes are cmat.errors' (its table is docs/cli.md's), and a command leaves through
    errors.leave: no raise SystemExit, sys.exit or ctx.exit of its own."""
    found = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.exc if isinstance(node, ast.Raise) else node
            if isinstance(call, ast.Call):
                call = call.func
            name = call.attr if isinstance(call, ast.Attribute) else getattr(call, "id", "")
            if name in ("SystemExit", "exit"):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
