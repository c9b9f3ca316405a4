"""Personal data: export of everything a user has, and erasure of the user (GDPR)."""
