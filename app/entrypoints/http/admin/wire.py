"""Wire model of the admin endpoints' answer."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.domain.models import ApiKey


class CurrentKey(BaseModel):
    """The valid client key and when it expires."""

    api_key: str = Field(description="The client key (`sk-...`).")
    expiry: str = Field(description="When the key expires, ISO 8601 in UTC.")

    @classmethod
    def of(cls, key: ApiKey) -> CurrentKey:
        """The key and its expiry, as the seed's `/current-key` returns them."""
        return cls(api_key=key.value, expiry=key.expires_at.isoformat())
