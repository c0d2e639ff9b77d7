#!/usr/bin/env bash
# Reads node_cpu_percent and http_error_rate from a Prometheus text-format
# endpoint (the URL in $1) into the cpu and error_rate outputs.
set -euo pipefail
metrics=$(curl -sSf --max-time 5 "$1")
value() {
	awk -v name="$1" '$1 == name { print $2; found = 1 } END { if (!found) exit 1 }' <<<"$metrics" ||
		{ echo "no $1 in the metrics of $2" >&2; exit 2; }
}
cpu=$(value node_cpu_percent "$1")
errors=$(value http_error_rate "$1")
echo "cpu ${cpu}%, error rate ${errors}"
printf 'cpu=%s\nerror_rate=%s\n' "$cpu" "$errors" >> "$ROUTINES_OUTPUT"
