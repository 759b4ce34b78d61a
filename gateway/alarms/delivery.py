"""Where case notices go: the delivery port and its two HTTP adapters.

:class:`NoticeSender` is the port the outbox worker (:mod:`gateway.alarms.notices`) delivers
through. :class:`WebhookSender` POSTs the notice as JSON, signed like inbound alarms (HMAC-SHA256
over ``<timestamp>.<body>``); :class:`SmsGatewaySender` sends the templated text to an SMS
gateway over HTTP. Both put the notice's idempotency key in ``Idempotency-Key``: a receiver that
honours it gets each notice once however often it is retried.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from gateway.alarms.hmac_auth import sign

__all__ = ["DeliveryError", "NoticeOut", "NoticeSender", "SmsGatewaySender", "WebhookSender", "render"]


class DeliveryError(Exception):
    """One attempt failed (the receiver refused, timed out or could not be reached); retried later."""


@dataclass(frozen=True, slots=True)
class NoticeOut:
    """A notice as a sender sees it."""

    key: str
    incident_id: str
    kind: str
    unit: str
    payload: dict[str, Any]


class NoticeSender(Protocol):
    """Delivers one notice or raises :class:`DeliveryError`."""

    channel: str

    async def send(self, notice: NoticeOut) -> None:
        """One delivery attempt."""
        ...


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, payload: dict[str, Any]) -> str:
    """The text of a template with the payload's values (a missing one is left empty)."""
    return template.format_map(_Missing({k: "" if v is None else v for k, v in payload.items()}))


def _check(r: httpx.Response) -> None:
    if not 200 <= r.status_code < 300:
        raise DeliveryError(f"HTTP {r.status_code}: {r.text[:120]}")


class WebhookSender:
    """POST the notice as JSON to one URL, HMAC-signed with the shared secret."""

    channel = "webhook"

    def __init__(self, url: str, secret: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.secret = secret
        self.client = client

    async def send(self, notice: NoticeOut) -> None:
        body = json.dumps(
            {
                "key": notice.key,
                "incident_id": notice.incident_id,
                "kind": notice.kind,
                "unit": notice.unit,
                "data": notice.payload,
            },
            ensure_ascii=False,
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": notice.key,
            "X-Liandong-Timestamp": ts,
            "X-Liandong-Signature": sign(self.secret, ts, body),
        }
        try:
            r = await self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise DeliveryError(f"{type(e).__name__}: {e}") from None
        _check(r)


class SmsGatewaySender:
    """Send the notice's text to its phone number through an HTTP SMS gateway.

    The request is ``POST <url>`` with JSON ``{"account", "to", "text", "msgid"}`` and HTTP basic
    authentication (account and password); ``msgid`` and ``Idempotency-Key`` are the notice's key.
    Any 2xx answer is an acceptance."""

    channel = "sms"

    def __init__(
        self, url: str, account: str, password: str, templates: dict[str, str], client: httpx.AsyncClient
    ) -> None:
        self.url = url
        self.account = account
        self.password = password
        self.templates = templates
        self.client = client

    def text(self, notice: NoticeOut) -> str:
        """The SMS text of a notice."""
        template = self.templates.get(notice.kind) or "【联动】案件{incident_id}：{kind}"
        return render(template, {**notice.payload, "kind": notice.kind})

    async def send(self, notice: NoticeOut) -> None:
        to = notice.payload.get("to")
        if not isinstance(to, str) or not to:
            raise DeliveryError("notice has no phone number")
        doc = {"account": self.account, "to": to, "text": self.text(notice), "msgid": notice.key}
        try:
            r = await self.client.post(
                self.url,
                json=doc,
                headers={"Idempotency-Key": notice.key},
                auth=(self.account, self.password),
            )
        except httpx.HTTPError as e:
            raise DeliveryError(f"{type(e).__name__}: {e}") from None
        _check(r)
