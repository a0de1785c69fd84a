"""The `cmat` executable and `python -m cmat`.

`cmat hook EVENT` goes straight to the hook runtime without loading click: a hook's start-up
time is spent inside the user's Claude Code session.
"""

import atexit
import gc
import sys

from cmat.claude.events import BY_COMMAND, read_stdin

# At exit the collector walks every object the imports made, for garbage the process drops
# anyway (7 ms of a warm report's 150): frozen first, they are skipped. Exit handlers still
# run; whatever cmat writes it closes before it returns, so nothing waits for that walk.
atexit.register(gc.freeze)


def no_budget_config() -> bool:
    """True when neither the user nor the project has a cmat config: a budget hook (or the
    settings guard) then has nothing to check and answers before importing anything more
    (it runs before every tool call).
    Paths as cmat.paths resolves them, written out with `os` alone."""
    import os

    from cmat.claude.own_files import config_folder

    project = os.environ.get("CLAUDE_PROJECT_DIR")
    if not project:
        return False  # the project must come from the payload: take the ordinary path
    return not (os.path.exists(os.path.join(config_folder(), "config.toml"))
                or os.path.exists(os.path.join(project, ".claude", "cmat.toml")))


def from_claude_code() -> None:
    """Started by Claude Code (a hook, the status line): what the project's settings set in
    the environment is not cmat's configuration (cmat.claude.hook_environment)."""
    from cmat.claude.hook_environment import restore

    restore()


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "hook" and sys.argv[2] in BY_COMMAND:
        from_claude_code()
        event = BY_COMMAND[sys.argv[2]]
        stdin = None
        if event.needs_budgets and sys.stdin is not None and not sys.stdin.isatty():
            if no_budget_config():
                read_stdin()
                sys.exit(0)
            raw = read_stdin()
            if event.checks_budgets:
                from cmat.claude import headroom
                from cmat.claude.own_files import writes_cmat_files

                # A write to cmat's own files is the full check's to refuse (and log).
                if not writes_cmat_files(raw) and headroom.answer(event.command, raw):
                    sys.exit(0)  # far from every limit: allowed
            import io

            stdin = io.BytesIO(raw)
        from cmat.claude.runtime import run

        sys.exit(run(sys.argv[2], stdin))
    # The status line runs every few seconds; its other options are ccusage's, and ignored.
    if sys.argv[1:2] == ["statusline"] and not {"-h", "--help"} & set(sys.argv[2:]):
        from_claude_code()
        from cmat.statusline import run as statusline

        sys.exit(statusline(debug=bool({"-d", "--debug"} & set(sys.argv[2:]))))
    from cmat.cli import main as cli_main

    cli_main()
