#!/usr/bin/env bash
# Prints a greeting and hands it to later steps as the output "message".
set -euo pipefail
# Its first argument is whom to greet (the input "who").
message="${GREETING}, ${1:-friend}! It is $(date -u +%H:%M) UTC."
echo "$message"
# Between delimiters of its own: a line break in the input cannot add outputs.
delim="EOF_$RANDOM$RANDOM"
printf 'message<<%s\n%s\n%s\n' "$delim" "$message" "$delim" >> "$ROUTINES_OUTPUT"
