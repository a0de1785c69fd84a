#!/usr/bin/env bash
# Claude Code UserPromptSubmit hook: refuses a new prompt once a budget is spent (see cmat-hook.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/cmat-hook.sh" hook prompt-submit
