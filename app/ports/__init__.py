"""Interfaces the domain depends on; adapters implement them."""

from app.ports.clock import Clock
from app.ports.key_store import KeyStore
from app.ports.llm_provider import LLMProvider

__all__ = ["Clock", "KeyStore", "LLMProvider"]
