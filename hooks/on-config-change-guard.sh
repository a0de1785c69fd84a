#!/usr/bin/env bash
# Claude Code ConfigChange hook: while a budget is set, keeps a settings change that would
# stop cmat's budget checks out of the running session (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- hook config-change
. "$dir/cmat-hook.sh"
