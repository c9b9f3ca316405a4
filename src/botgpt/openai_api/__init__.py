"""An OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`) over the configured model."""
