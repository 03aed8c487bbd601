"""Entities, domain errors and services; imports no framework."""
