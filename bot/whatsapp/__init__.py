"""The WhatsApp Cloud API transport: the webhook Meta calls, and the Graph API client.

`run_whatsapp(handler, settings, db)` serves it; `whatsapp_app` builds the aiohttp
application; `GraphClient` sends; `WhatsAppOutbox` is the service's `Outbox` for WhatsApp.
See docs/whatsapp.md.
"""

from bot.whatsapp.choices import NumberedChoices
from bot.whatsapp.graph import GraphClient, MediaInfo
from bot.whatsapp.outbox import WhatsAppOutbox
from bot.whatsapp.server import WhatsAppNotConfigured, WhatsAppServer, run_whatsapp
from bot.whatsapp.updates import parse_notification, signature, valid_signature
from bot.whatsapp.webhook import WEBHOOK, WEBHOOK_PATH, Handler, WhatsAppWebhook, whatsapp_app

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "GraphClient",
    "Handler",
    "MediaInfo",
    "NumberedChoices",
    "WEBHOOK",
    "WEBHOOK_PATH",
    "WhatsAppNotConfigured",
    "WhatsAppOutbox",
    "WhatsAppServer",
    "WhatsAppWebhook",
    "parse_notification",
    "run_whatsapp",
    "signature",
    "valid_signature",
    "whatsapp_app",
]
