"""The built-free web front end: the chat page, the embeddable widget and the admin dashboard."""
