#!/usr/bin/env bash
# Greets $1, keeps the greeting as an artifact and hands it on as an output.
set -euo pipefail
message="${GREETING}, ${1:-world}!"
echo "$message"
echo "$message" > greeting.txt
# $1 comes from whoever starts the run and may hold a line break: the
# output is written between delimiters nobody can guess, so such a line
# cannot add an output of its own (docs/routine.md).
delim="EOF_$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
printf 'message<<%s\n%s\n%s\n' "$delim" "$message" "$delim" >> "$ROUTINES_OUTPUT"
