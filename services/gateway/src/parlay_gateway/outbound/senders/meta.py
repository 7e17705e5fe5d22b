"""Meta Graph API senders: WhatsApp Cloud API and the Messenger / Instagram Send API.

WhatsApp:  POST {base}/{version}/{phone_number_id}/messages, `Authorization: Bearer <access_token>`
           -> {"messages": [{"id": "wamid..."}]}
Messenger: POST {base}/{version}/me/messages?access_token=<page access token>
Instagram: the same endpoint with the Instagram-connected page's token
           -> {"recipient_id": "...", "message_id": "m_..."}
Errors: {"error": {"code", "message", "error_subcode", "is_transient", "error_data"}}.
Neither API has an idempotency key: a request repeated after a lost response sends twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders.base import (
    IDEMPOTENCY_HEADER,
    ChannelSender,
    Delivery,
    Outcome,
    ProviderRequest,
    ProviderResponse,
    SendContext,
    Unsendable,
    http_outcome,
    parse_retry_after,
)

GRAPH_BASE_URL = "https://graph.facebook.com"
#: Graph error codes that mean "slow down / try again later" (even on HTTP 400).
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131056, 133016})
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")


def graph_outcome(response: ProviderResponse) -> Outcome:
    """Classify a non-2xx Graph API response."""
    data = response.json()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return http_outcome(response, "", "")
    code = error.get("code")
    message = str(error.get("message", ""))
    details = (
        (error.get("error_data") or {}).get("details")
        if isinstance(error.get("error_data"), dict)
        else ""
    )
    if details:
        message = f"{message}: {details}"
    code_str = str(code) if code is not None else f"http_{response.status}"
    if error.get("error_subcode"):
        code_str = f"{code_str}/{error['error_subcode']}"
    retry_after = parse_retry_after(response.header("retry-after"))
    if (
        response.status == 429
        or response.status >= 500
        or code in RETRYABLE_CODES
        or error.get("is_transient")
    ):
        return Outcome.retry(code_str, message, retry_after)
    return Outcome.failed(code_str, message)


class WhatsAppSender(ChannelSender):
    channel: ClassVar[str] = "whatsapp"
    default_base_url: ClassVar[str] = GRAPH_BASE_URL

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        token = self.credential(account, "access_token")
        phone_number_id = account.settings.get("phone_number_id", "")
        if not phone_number_id:
            raise Unsendable("missing_setting", "channel account has no phone_number_id setting")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": delivery.recipient,
        }
        body.update(self.message(delivery))
        if delivery.reply_to_provider_message_id:
            body["context"] = {"message_id": delivery.reply_to_provider_message_id}
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/{ctx.api_version}/{phone_number_id}/messages",
            headers={"Authorization": f"Bearer {token}", IDEMPOTENCY_HEADER: delivery.message_id},
            json=body,
        )

    @staticmethod
    def message(delivery: Delivery) -> dict[str, Any]:
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            return {"type": "text", "text": {"preview_url": False, "body": content.text.body}}
        if kind == "template":
            t = content.template
            template: dict[str, Any] = {"name": t.name, "language": {"code": t.language or "en_US"}}
            if t.body_parameters:
                template["components"] = [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": p.text} for p in t.body_parameters],
                    }
                ]
            return {"type": "template", "template": template}
        if kind == "interactive":
            i = content.interactive
            interactive: dict[str, Any] = {"body": {"text": i.body}}
            if i.header:
                interactive["header"] = {"type": "text", "text": i.header}
            if i.footer:
                interactive["footer"] = {"text": i.footer}
            if i.sections:
                interactive["type"] = "list"
                interactive["action"] = {
                    "button": i.list_button_text or "Choose",
                    "sections": [
                        {
                            **({"title": s.title} if s.title else {}),
                            "rows": [
                                {
                                    "id": r.id,
                                    "title": r.title,
                                    **({"description": r.description} if r.description else {}),
                                }
                                for r in s.rows
                            ],
                        }
                        for s in i.sections
                    ],
                }
            else:
                interactive["type"] = "button"
                interactive["action"] = {
                    "buttons": [
                        {"type": "reply", "reply": {"id": b.id, "title": b.title}}
                        for b in i.buttons
                    ]
                }
            return {"type": "interactive", "interactive": interactive}
        if kind == "media":
            m = content.media
            media_kind = m.kind if m.kind in MEDIA_KINDS else "document"
            if not m.url and not m.provider_media_id:
                raise Unsendable("invalid_content", "media needs a url")
            obj: dict[str, Any] = {"link": m.url} if m.url else {"id": m.provider_media_id}
            if m.caption and media_kind in ("image", "video", "document"):
                obj["caption"] = m.caption
            if m.filename and media_kind == "document":
                obj["filename"] = m.filename
            return {"type": media_kind, media_kind: obj}
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        if 200 <= response.status < 300:
            data = response.json()
            try:
                return Outcome.sent(str(data["messages"][0]["id"]))
            except (KeyError, IndexError, TypeError):
                return Outcome.failed("bad_response", f"no messages[0].id in {response.text()}")
        return graph_outcome(response)


class MessengerSender(ChannelSender):
    """Messenger Send API (Instagram uses the same endpoint and format)."""

    channel: ClassVar[str] = "messenger"
    default_base_url: ClassVar[str] = GRAPH_BASE_URL

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        token = self.credential(account, "access_token")
        message = self.message(delivery)
        tag = account.settings.get("message_tag", "")
        body: dict[str, Any] = {
            "recipient": {"id": delivery.recipient},
            # Inside the 24-hour window a reply is a RESPONSE; outside it needs a message tag
            # (account setting message_tag, e.g. ACCOUNT_UPDATE) — the conversation service
            # decides which messages may be sent at all.
            "messaging_type": "MESSAGE_TAG"
            if tag and delivery.purpose == "transactional"
            else "RESPONSE",
            "message": message,
        }
        if body["messaging_type"] == "MESSAGE_TAG":
            body["tag"] = tag
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/{ctx.api_version}/me/messages",
            headers={IDEMPOTENCY_HEADER: delivery.message_id},
            params={"access_token": token},
            json=body,
        )

    @staticmethod
    def message(delivery: Delivery) -> dict[str, Any]:
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            return {"text": content.text.body}
        if kind == "interactive":
            i = content.interactive
            options = [(b.id, b.title) for b in i.buttons] or [
                (r.id, r.title) for s in i.sections for r in s.rows
            ]
            text = "\n\n".join(part for part in (i.header, i.body, i.footer) if part)
            return {
                "text": text,
                "quick_replies": [
                    {"content_type": "text", "title": title[:20], "payload": option_id}
                    for option_id, title in options[:13]
                ],
            }
        if kind == "media":
            m = content.media
            if not m.url:
                raise Unsendable("invalid_content", "media needs a url")
            attachment_type = m.kind if m.kind in ("image", "audio", "video") else "file"
            return {
                "attachment": {
                    "type": attachment_type,
                    "payload": {"url": m.url, "is_reusable": False},
                }
            }
        if kind == "template":
            raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        if 200 <= response.status < 300:
            data = response.json()
            message_id = data.get("message_id") if isinstance(data, dict) else None
            if not message_id:
                return Outcome.failed("bad_response", f"no message_id in {response.text()}")
            return Outcome.sent(str(message_id))
        return graph_outcome(response)


class InstagramSender(MessengerSender):
    channel: ClassVar[str] = "instagram"
