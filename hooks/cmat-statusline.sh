#!/usr/bin/env bash
# Claude Code status line: this session's cost, today's, the task's and the tightest budget (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- statusline "$@"
. "$dir/cmat-hook.sh"
