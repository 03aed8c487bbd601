"""`GET /v1/models` and `GET /v1/models/{id}` (and the same at the root): the models a client may name."""
