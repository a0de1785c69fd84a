#!/usr/bin/env bash
# Claude Code SessionEnd hook: records the session's cost (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- hook session-end
. "$dir/cmat-hook.sh"
