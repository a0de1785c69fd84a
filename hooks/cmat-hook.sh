#!/usr/bin/env bash
# Runs cmat ARGS... (such as `hook session-end`: what `python -m cmat ARGS...` runs) with the
# JSON Claude Code sends on stdin.
# The hook scripts source it with their arguments set; it can also be run directly.
# Needs no jq or other tool, and never runs a program called `cmat` found on PATH (another
# package, CMAT's GUI for one, may own that name): always an interpreter running cmat.entry.
# Always exits 0: cmat must never turn a Claude Code session into a hook error.
# CMAT_HOOK_WHICH=1 prints the command it would run instead (what `cmat hooks status` shows).
[ "$#" -gt 0 ] || { echo "usage: cmat-hook.sh ARGS..." >&2; exit 0; }
# `cmat hooks install` writes the interpreter of the cmat that installed the hook here:
CMAT_INSTALLED_PYTHON=''
cmat_args=("$@")
# -P: the current directory (the project, maybe a cloned repository) is never put on the
# module path, so a `cmat/` folder there cannot stand in for cmat.
launch() {  # never a non-zero exit, even where the interpreter turns out to lack cmat
  if [ -n "${CMAT_HOOK_WHICH:-}" ]; then printf '%s -m cmat\n' "$1"; exit 0; fi
  # -c, not -m: runpy alone would cost a third of a budget check answered from its cache
  "$1" -P -c "from cmat.entry import main; main()" "${cmat_args[@]}"
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
# A teammate's clone, or a checkout's hooks/ wired by hand: any python3 that has cmat.
for candidate in python3 python; do
  found=$(command -v "$candidate" 2>/dev/null) || continue
  if "$found" -P -c 'import cmat.entry' >/dev/null 2>&1; then launch "$found"; fi
done
if [ -n "${CMAT_HOOK_WHICH:-}" ]; then exit 0; fi
# No interpreter with cmat: a recording hook leaves what it knows (the payload, the task it is
# for) in cmat's spool, which the next cmat run (any hook, scan or report) applies.
if [ "${cmat_args[0]:-}" = hook ] && { [ "${cmat_args[1]:-}" = session-end ] ||
                                       [ "${cmat_args[1]:-}" = subagent-stop ]; }; then
  spool="${XDG_STATE_HOME:-$HOME/.local/state}/cmat/spool"
  project="${CLAUDE_PROJECT_DIR:-$PWD}"
  marker="$project/.claude/data/cmat-current-task"
  task="${CMAT_CURRENT_TASK_ID:-}"
  if [ -z "$task" ] && [ -f "$marker" ] && [ ! -L "$marker" ]; then
    task=$(head -c 256 "$marker" | tr -d '\r\n')
  fi
  if (umask 077 && mkdir -p "$spool") 2>/dev/null; then
    name="$spool/$(date +%s%N)-$$.hook"
    { printf 'cmat-hook-spool 1\n'
      printf 'event=%q\n' "${cmat_args[1]}"
      printf 'project=%q\n' "$project"
      printf 'task=%q\n' "$task"
      printf 'enhancement=%q\n' "${CMAT_ENHANCEMENT:-}"
      printf 'agent=%q\n' "${CMAT_AGENT:-}"
      printf -- '---\n'
      head -c 1048576
    } > "$name.tmp" 2>/dev/null && mv "$name.tmp" "$name" &&
      echo "cmat: not found; the cost waits in $name for the next cmat run" >&2 && exit 0
  fi
fi
echo "cmat: not found (run: cmat hooks status)" >&2
exit 0
