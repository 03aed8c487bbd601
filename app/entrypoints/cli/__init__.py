"""`aiapi`, the gateway's command-line client: a client of the HTTP API, no server code imported."""
