"""Concrete LLM providers."""
