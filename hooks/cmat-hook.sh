#!/usr/bin/env bash
# Runs `python -m cmat ARGS...` (such as `hook session-end`) with the JSON Claude Code sends on stdin.
# The hook scripts source it with their arguments set; it can also be run directly.
# Needs no jq or other tool, and never runs a program called `cmat` found on PATH (another
# package, CMAT's GUI for one, may own that name): always an interpreter with `-m cmat`.
# Always exits 0: cmat must never turn a Claude Code session into a hook error.
# CMAT_HOOK_WHICH=1 prints the command it would run instead (what `cmat hooks status` shows).
[ "$#" -gt 0 ] || { echo "usage: cmat-hook.sh ARGS..." >&2; exit 0; }
# `cmat hooks install` writes the interpreter of the cmat that installed the hook here:
CMAT_INSTALLED_PYTHON=''
cmat_args=("$@")
launch() {  # never a non-zero exit, even where the interpreter turns out to lack cmat
  if [ -n "${CMAT_HOOK_WHICH:-}" ]; then printf '%s -m cmat\n' "$1"; exit 0; fi
  "$1" -m cmat "${cmat_args[@]}"
  exit 0
}
if [ -n "${CMAT_PYTHON:-}" ] && [ -x "$CMAT_PYTHON" ]; then launch "$CMAT_PYTHON"; fi
if [ -n "$CMAT_INSTALLED_PYTHON" ] && [ -x "$CMAT_INSTALLED_PYTHON" ]; then
  launch "$CMAT_INSTALLED_PYTHON"
fi
here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
# A checkout's hooks/ beside its .venv, or a project's .claude/hooks/cmat/ below its .venv.
for candidate in "$here/../.venv/bin/python" "$here/../../../.venv/bin/python"; do
  if [ -x "$candidate" ]; then launch "$candidate"; fi
done
if [ -n "${CMAT_HOOK_WHICH:-}" ]; then exit 0; fi
echo "cmat: not found (run: cmat hooks status)" >&2
exit 0
