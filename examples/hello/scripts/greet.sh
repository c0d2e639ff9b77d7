#!/usr/bin/env bash
# Greets $1, keeps the greeting as an artifact and hands it on as an output.
set -euo pipefail
message="${GREETING}, ${1:-world}!"
echo "$message"
echo "$message" > greeting.txt
echo "message=$message" >> "$ROUTINES_OUTPUT"
