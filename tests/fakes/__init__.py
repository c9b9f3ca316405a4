"""Reusable fake backends (real local servers) for tests."""
