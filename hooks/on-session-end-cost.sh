#!/usr/bin/env bash
# Claude Code SessionEnd hook: records the session's cost (see cmat-hook.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/cmat-hook.sh" hook session-end
