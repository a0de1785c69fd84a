#!/usr/bin/env bash
# Claude Code UserPromptSubmit hook: refuses a new prompt once a budget is spent (see cmat-hook.sh).
dir="${BASH_SOURCE[0]%/*}"
[ "$dir" = "${BASH_SOURCE[0]}" ] && dir=.
set -- hook prompt-submit
. "$dir/cmat-hook.sh"
