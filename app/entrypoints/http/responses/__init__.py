"""The Responses API (`/v1/responses`): Codex CLI and every Responses client, carried by the chat service.

`router` is HTTP only; `wire` holds the request model and the shapes sent back;
`translate` maps Responses input to a domain ChatRequest; `output` builds output
items from chunks; `events` turns an opened stream into Responses events;
`serving` ties them to the chat service and the response store.
"""
