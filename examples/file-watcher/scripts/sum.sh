#!/usr/bin/env bash
# sum.sh FILE.csv: sum the second column of a CSV with a header line, write
# the total to outbox/<name>.total and to the step's outputs.
set -euo pipefail
csv=$1
name=$(basename "$csv" .csv)
total=$(awk -F, 'NR > 1 && $2 != "" { sum += $2 } END { printf "%.2f\n", sum }' "$csv")
mkdir -p outbox
printf '%s\n' "$total" > "outbox/$name.total.tmp"
mv "outbox/$name.total.tmp" "outbox/$name.total"
echo "total=$total" >> "$ROUTINES_OUTPUT"
echo "$name: $total"
