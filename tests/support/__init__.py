"""Test doubles that speak real protocols, and process helpers."""
