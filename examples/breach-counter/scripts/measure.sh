#!/usr/bin/env bash
# Prints the CPU load as a percentage of the machine's CPUs (the 1-minute
# load average), or the reading given as $1, into the percent output.
set -euo pipefail
if [[ -n "${1:-}" ]]; then
	percent=$1
else
	percent=$(awk -v cpus="$(nproc)" '{ printf "%d", $1 * 100 / cpus }' /proc/loadavg)
fi
echo "CPU at ${percent}%"
echo "percent=$percent" >> "$ROUTINES_OUTPUT"
