"""The HTTP edge: one package per endpoint family (a router and its wire models), and what they
share once: `wire` (common wire models), `answer` (how generation routes answer), `sse`, `ids`,
`streaming`, `errors` (the one mapping of errors to HTTP), `json_codec` (JSON in and out),
`limits` (limits before work) and `head_guard` (the server protocol's bounds on a request head)."""
