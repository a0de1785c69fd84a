"""The `cmat` executable and `python -m cmat`.

`cmat hook EVENT` goes straight to the hook runtime without loading click: a hook's start-up
time is spent inside the user's Claude Code session.
"""

import sys

HOOK_EVENTS = {
    "session-end": "Record the ended session's cost (SessionEnd).",
    "subagent-stop": "Record the session's cost so far as a subagent ends (SubagentStop).",
    "prompt-submit": "Refuse a new prompt when a budget is exhausted (UserPromptSubmit).",
    "pre-tool-use": "Deny the next tool call when a budget is exhausted (PreToolUse).",
}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "hook" and sys.argv[2] in HOOK_EVENTS:
        from cmat.hooks import run

        sys.exit(run(sys.argv[2]))
    if sys.argv[1:] in (["statusline"], ["statusline", "--debug"]):  # runs every few seconds
        from cmat.statusline import run as statusline

        sys.exit(statusline(debug=len(sys.argv) == 3))
    from cmat.cli import main as cli_main

    cli_main()
