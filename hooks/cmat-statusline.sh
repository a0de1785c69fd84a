#!/usr/bin/env bash
# Claude Code status line: this session's cost, today's, the task's and the tightest budget.
exec "$(dirname "${BASH_SOURCE[0]}")/cmat-hook.sh" statusline "$@"
