#!/usr/bin/env bash
# Claude Code SubagentStop hook: records the subagent's cost as it ends (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- hook subagent-stop
. "$dir/cmat-hook.sh"
