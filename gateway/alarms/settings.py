"""Settings of case notifications (``[alarms.notify]``): where notices go, how often they are
retried, and the SMS texts. Credentials are stored sealed by the secret box (``liandong notify seal``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_SMS_TEMPLATES", "NotifySettings"]

# {placeholders} come from the notice's payload (see gateway.alarms.notices).
DEFAULT_SMS_TEMPLATES: dict[str, str] = {
    "dispatched": "【联动】案件{incident_id}（{category}）已派至{unit_name}：{address}。请于{onsite_deadline}前到场。",
    "deadline_soon": "【联动】案件{incident_id}（{category}）{deadline_name}将于{deadline}到期，请尽快处理。",
    "deadline_passed": "【联动】案件{incident_id}（{category}）已超过{deadline_name}（{deadline}），请立即处理。",
}


class NotifySettings(BaseModel):
    """Delivery of case notices: an HTTP webhook (HMAC-signed) and/or an SMS gateway over HTTP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str = Field("", max_length=500, description="POST each notice as JSON here; empty = no webhook.")
    webhook_secret_sealed: str = Field(
        "", max_length=1000, description="The webhook's HMAC secret, sealed with `liandong notify seal`."
    )
    sms_url: str = Field("", max_length=500, description="The SMS gateway's send URL; empty = no SMS.")
    sms_account: str = Field("", max_length=128, description="Account name sent to the SMS gateway.")
    sms_password_sealed: str = Field(
        "", max_length=1000, description="The SMS gateway's password or API key, sealed with `liandong notify seal`."
    )
    sms_templates: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SMS_TEMPLATES), description="Text per notice kind."
    )
    contacts: dict[str, list[str]] = Field(
        default_factory=dict, description="Mobile numbers of the people responsible, per unit id."
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="One delivery attempt gives up after this.")
    retry_base_s: float = Field(2.0, gt=0, le=600, description="First retry delay; doubled per attempt.")
    retry_max_s: float = Field(300.0, gt=0, le=86_400, description="Longest retry delay.")
    max_attempts: int = Field(30, ge=1, le=1000, description="Then the notice is marked failed (visible on the case).")
    poll_s: float = Field(1.0, gt=0, le=60, description="How often the worker looks for due notices.")
    warn_before_minutes: float = Field(30.0, ge=0, le=24 * 60, description="Notice this long before a deadline.")

    @field_validator("webhook_url", "sms_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("contacts")
    @classmethod
    def _phones(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for unit, phones in v.items():
            for p in phones:
                if not p.lstrip("+").isdigit() or not 5 <= len(p) <= 20:
                    raise ValueError(f"contacts.{unit}: {p!r} is not a phone number")
        return v
