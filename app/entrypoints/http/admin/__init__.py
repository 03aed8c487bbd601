"""The admin endpoints: `GET /current-key` and `POST /rotate-key` (behind the `admin-secret` header)."""
