"""Outgoing webhooks: signed HTTP POSTs to the owner's URLs when domain events happen."""
