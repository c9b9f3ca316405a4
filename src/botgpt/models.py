"""Imports every table so metadata (Alembic, tests) sees the whole schema."""

from botgpt.auth.models import ApiKey, Consent, RefreshToken, User
from botgpt.bots.models import Bot, BotVersion, bot_documents
from botgpt.conversations.answer_cache import CachedAnswer
from botgpt.conversations.links import conversation_documents
from botgpt.conversations.models import Conversation, Message, MessageFeedback
from botgpt.db import Base
from botgpt.documents.models import Document
from botgpt.faqs.models import Faq, FaqCategory
from botgpt.idempotency import IdempotencyRecord
from botgpt.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "Base",
    "Bot",
    "BotVersion",
    "CachedAnswer",
    "Consent",
    "Conversation",
    "Document",
    "Faq",
    "FaqCategory",
    "IdempotencyRecord",
    "Message",
    "MessageFeedback",
    "RefreshToken",
    "User",
    "Webhook",
    "WebhookDelivery",
    "bot_documents",
    "conversation_documents",
]
