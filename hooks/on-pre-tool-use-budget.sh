#!/usr/bin/env bash
# Claude Code PreToolUse hook: denies the next tool call once a budget is spent (see cmat-hook.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/cmat-hook.sh" hook pre-tool-use
