#!/usr/bin/env bash
# Runs `cmat ARGS...` (such as `hook session-end`) with the JSON Claude Code sends on stdin.
# The hook scripts source it with their arguments set; it can also be run directly.
# Needs no jq or other tool. Always exits 0: cmat must never turn a Claude Code session into a
# hook error. No subshell before cmat starts: a status line runs every few seconds.
[ "$#" -gt 0 ] || { echo "usage: cmat-hook.sh ARGS..." >&2; exit 0; }
# `cmat hooks install` fills these two in with the cmat that installed the hook.
CMAT_BIN="${CMAT_BIN:-}"
CMAT_PYTHON="${CMAT_PYTHON:-}"
if [ -n "$CMAT_BIN" ] && [ -x "$CMAT_BIN" ]; then exec "$CMAT_BIN" "$@"; fi
if [ -n "$CMAT_PYTHON" ] && [ -x "$CMAT_PYTHON" ]; then exec "$CMAT_PYTHON" -m cmat "$@"; fi
here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
for candidate in "$here/../.venv/bin/cmat" "$here/../../.venv/bin/cmat"; do
  if [ -x "$candidate" ]; then exec "$candidate" "$@"; fi
done
if command -v cmat >/dev/null 2>&1; then exec cmat "$@"; fi
echo "cmat: not found (run: cmat hooks status)" >&2
exit 0
