#!/usr/bin/env bash
# A terminal chat with the gateway in plain bash: curl sends, jq builds and reads the JSON.
# The conversation is kept, so later questions have context. Ctrl-D leaves.
#   AIAPI_KEY=sk-... examples/terminal_chat.sh     (or ADMIN_SECRET=... to fetch the key)
# AIAPI_URL defaults to http://127.0.0.1:8000.
set -euo pipefail
url=${AIAPI_URL:-http://127.0.0.1:8000}
key=${AIAPI_KEY:-$(curl -sSf "$url/current-key" -H "admin-secret: ${ADMIN_SECRET:?set AIAPI_KEY or ADMIN_SECRET}" | jq -r .api_key)}
messages='[]'
while IFS= read -r -e -p 'you> ' prompt; do
  [ -n "$prompt" ] || continue
  messages=$(jq -c --arg p "$prompt" '. + [{role: "user", content: $p}]' <<<"$messages")
  reply=$(curl -sS "$url/v1/chat/completions" -H "Authorization: Bearer $key" \
               -H 'content-type: application/json' -d "$(jq -c '{messages: .}' <<<"$messages")")
  if answer=$(jq -er '.choices[0].message.content' <<<"$reply" 2>/dev/null); then
    printf '%s\n' "$answer"
    messages=$(jq -c --arg a "$answer" '. + [{role: "assistant", content: $a}]' <<<"$messages")
  else
    printf 'error: %s\n' "$(jq -r '.error.message? // .' <<<"$reply")" >&2
    messages=$(jq -c '.[:-1]' <<<"$messages")
  fi
done
