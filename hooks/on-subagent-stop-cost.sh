#!/usr/bin/env bash
# Claude Code SubagentStop hook: records the subagent's cost as it ends (see cmat-hook.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/cmat-hook.sh" hook subagent-stop
