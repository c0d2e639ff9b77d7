#!/usr/bin/env bash
# Signs "Hello, $1!" with the secret token: the signature is the first 16
# hex digits of sha256(token + message), a stand-in for an HMAC an API
# would check.
set -euo pipefail
message="Hello, $1!"
signature=$(printf '%s%s' "$GREETING_TOKEN" "$message" | sha256sum | cut -c1-16)
echo "$message"
# A careless line: the engine redacts the token, here and in any output.
echo "debug: token is $GREETING_TOKEN"
echo "signature=$signature" >> "$ROUTINES_OUTPUT"
