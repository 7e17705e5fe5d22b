"""Twilio Programmable Messaging sender (SMS/MMS, and WhatsApp through Twilio).

POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded, HTTP basic auth
(account_sid:auth_token). From = setting `from` (or `messaging_service_sid`); a `whatsapp:`
recipient gets a `whatsapp:` sender (setting `whatsapp_from`, else `from` prefixed). Templates are
Content API templates: ContentSid = template name, ContentVariables = {"1": ..., "2": ...}.
-> 201 {"sid": "SM...", "status": "queued"}; errors {"code", "message", "more_info", "status"}.
Twilio's Messages API has no idempotency key.
"""

from __future__ import annotations

import json
from typing import ClassVar

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


class TwilioSender(ChannelSender):
    channel: ClassVar[str] = "twilio"
    default_base_url: ClassVar[str] = "https://api.twilio.com"

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        sid = self.credential(account, "account_sid")
        token = self.credential(account, "auth_token")
        to = delivery.recipient
        form: list[tuple[str, str]] = [("To", to)]
        sender = account.settings.get("from", "")
        if to.startswith("whatsapp:"):
            sender = account.settings.get("whatsapp_from", "") or sender
            if sender and not sender.startswith("whatsapp:"):
                sender = f"whatsapp:{sender}"
        service = account.settings.get("messaging_service_sid", "")
        if sender:
            form.append(("From", sender))
        elif service:
            form.append(("MessagingServiceSid", service))
        else:
            raise Unsendable(
                "missing_setting", "channel account has no from / messaging_service_sid"
            )
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            form.append(("Body", content.text.body))
        elif kind == "media":
            if not content.media.url:
                raise Unsendable("invalid_content", "media needs a url")
            if content.media.caption:
                form.append(("Body", content.media.caption))
            form.append(("MediaUrl", content.media.url))
        elif kind == "template":
            t = content.template
            form.append(("ContentSid", t.name))
            if t.body_parameters:
                variables = {str(i): p.text for i, p in enumerate(t.body_parameters, start=1)}
                form.append(("ContentVariables", json.dumps(variables, separators=(",", ":"))))
        elif kind == "interactive":
            i = content.interactive
            options = [b.title for b in i.buttons] or [r.title for s in i.sections for r in s.rows]
            lines = [part for part in (i.header, i.body) if part]
            lines += [f"{n}. {title}" for n, title in enumerate(options, start=1)]
            if i.footer:
                lines.append(i.footer)
            form.append(("Body", "\n".join(lines)))
        else:
            raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")
        if ctx.public_url:
            form.append(
                (
                    "StatusCallback",
                    f"{ctx.public_url.rstrip('/')}/webhooks/twilio/{account.channel_account_id}",
                )
            )
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/2010-04-01/Accounts/{sid}/Messages.json",
            headers={IDEMPOTENCY_HEADER: delivery.message_id},
            form=form,
            auth=(sid, token),
        )

    def parse(self, response: ProviderResponse) -> Outcome:
        data = response.json()
        if 200 <= response.status < 300:
            sid = data.get("sid") if isinstance(data, dict) else None
            if not sid:
                return Outcome.failed("bad_response", f"no sid in {response.text()}")
            return Outcome.sent(str(sid))
        if not isinstance(data, dict) or "code" not in data:
            return http_outcome(response, "", "")
        code = str(data.get("code"))
        message = str(data.get("message", ""))
        if response.status == 429 or response.status >= 500:
            return Outcome.retry(code, message, parse_retry_after(response.header("retry-after")))
        return Outcome.failed(code, message)
