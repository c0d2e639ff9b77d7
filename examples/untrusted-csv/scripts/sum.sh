#!/usr/bin/env bash
# Sums the second column of $CSV; lines that are not "name,number" are
# counted as rejected, whatever they hold.
set -euo pipefail
rows=0 total=0 rejected=0
while IFS=, read -r name amount; do
  if [[ $amount =~ ^[0-9]+$ ]]; then
    rows=$((rows + 1))
    total=$((total + amount))
  else
    rejected=$((rejected + 1))
  fi
done <<< "$CSV"
{
  echo "rows=$rows"
  echo "total=$total"
  echo "rejected=$rejected"
} >> "$ROUTINES_OUTPUT"
