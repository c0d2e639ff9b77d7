#!/usr/bin/env bash
# Checks and normalizes one order (ORDER_ID, ORDER_CUSTOMER, ORDER_TOTAL)
# and writes id, customer and total_cents to $ROUTINES_OUTPUT. A bad order
# fails the step, so nothing is stored. Bash only: no jq, no python.
set -euo pipefail

reject() {
  echo "order rejected: $*" >&2
  exit 1
}

id=$ORDER_ID
[[ $id =~ ^[A-Za-z0-9_-]{1,64}$ ]] || reject "id must be 1 to 64 letters, digits, _ or -, got '$id'"

# Trim, and fold runs of white space (newlines included) into one space.
read -r -d '' -a words <<<"$ORDER_CUSTOMER" || true
customer="${words[*]:-}"
[[ -n $customer ]] || reject "customer is missing"
(( ${#customer} <= 200 )) || reject "customer is longer than 200 characters"

# A total such as 12, 12.5 or 12.50, in the currency's main unit.
total=$ORDER_TOTAL
[[ $total =~ ^([0-9]{1,12})(\.([0-9]{1,2}))?$ ]] || reject "total must be an amount such as 12.50, got '$total'"
whole=${BASH_REMATCH[1]}
cents=${BASH_REMATCH[3]}
cents=${cents}00
total_cents=$(( 10#$whole * 100 + 10#${cents:0:2} ))

{
  echo "id=$id"
  echo "customer=$customer"
  echo "total_cents=$total_cents"
} >>"$ROUTINES_OUTPUT"
echo "order $id: $customer, $total_cents cents"
