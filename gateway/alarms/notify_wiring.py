"""Builds the notification senders from the settings (unsealing their credentials) and the outbox
worker; the composition root calls :func:`build_notices`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

from gateway.alarms.delivery import NoticeSender, SmsGatewaySender, WebhookSender
from gateway.alarms.notices import NoticeWorker, Outbox
from gateway.alarms.settings import NotifySettings
from storage.db import Database
from storage.secretbox import SecretBox

__all__ = ["build_notices"]


def build_notices(
    settings: NotifySettings, db: Database, box: SecretBox
) -> tuple[Outbox, NoticeWorker, Callable[[], Awaitable[Callable[[], Awaitable[None]]]]]:
    """The outbox (for the workflow), the worker, and its start function (which returns the stop)."""
    client = httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False)
    senders: dict[str, NoticeSender] = {}
    if settings.webhook_url:
        secret = box.decrypt(settings.webhook_secret_sealed) if settings.webhook_secret_sealed else ""
        senders["webhook"] = WebhookSender(settings.webhook_url, secret, client)
    if settings.sms_url:
        password = box.decrypt(settings.sms_password_sealed) if settings.sms_password_sealed else ""
        senders["sms"] = SmsGatewaySender(
            settings.sms_url, settings.sms_account, password, settings.sms_templates, client
        )
    worker = NoticeWorker(settings, db, senders)
    outbox = Outbox(settings, set(senders))

    async def start() -> Callable[[], Awaitable[None]]:
        task = asyncio.create_task(worker.run(), name="incident-notices")

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.aclose()

        return stop

    return outbox, worker, start
