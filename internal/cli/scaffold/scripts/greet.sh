#!/usr/bin/env bash
# Prints a greeting and hands it to later steps as the output "message".
set -euo pipefail
message="${GREETING}, $(whoami 2>/dev/null || echo friend)! It is $(date -u +%H:%M) UTC."
echo "$message"
echo "message=$message" >> "$ROUTINES_OUTPUT"
