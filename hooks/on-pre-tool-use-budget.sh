#!/usr/bin/env bash
# Claude Code PreToolUse hook: denies the next tool call once a budget is spent (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- hook pre-tool-use
. "$dir/cmat-hook.sh"
