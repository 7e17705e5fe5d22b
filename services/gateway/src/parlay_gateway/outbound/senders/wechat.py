"""WeChat Official Account customer-service message sender.

POST {base}/cgi-bin/message/custom/send?access_token=<token> {"touser", "msgtype", ...}; the
access token comes from GET {base}/cgi-bin/token?grant_type=client_credential&appid&secret
(valid 7200 s, cached by the dispatcher). Every answer is HTTP 200 with {"errcode", "errmsg"};
errcode 0 is success. The API returns no message id and has no idempotency key.

Media by link: WeChat sends images only by an uploaded media_id, so a media link goes as a
one-article `news` message (title, link, picture). Buttons and lists become a `msgmenu`.
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
)

#: errcodes worth retrying: system busy, API frequency / quota limits.
RETRY_ERRCODES = frozenset({-1, 45009, 45011, 45047})
#: the access token is invalid or expired: fetch a new one, then retry.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})


class WeChatSender(ChannelSender):
    channel: ClassVar[str] = "wechat"
    default_base_url: ClassVar[str] = "https://api.weixin.qq.com"

    def token_request(self, account: ChannelAccount, ctx: SendContext) -> ProviderRequest:
        return ProviderRequest(
            "GET",
            f"{ctx.base_url}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.credential(account, "app_id"),
                "secret": self.credential(account, "app_secret"),
            },
        )

    def parse_token(self, response: ProviderResponse) -> tuple[str, float]:
        data = response.json()
        if response.status == 200 and isinstance(data, dict) and data.get("access_token"):
            return str(data["access_token"]), float(data.get("expires_in", 7200))
        errcode = data.get("errcode") if isinstance(data, dict) else response.status
        errmsg = data.get("errmsg") if isinstance(data, dict) else response.text()
        raise Unsendable(f"token_{errcode}", f"access token refused: {errmsg}")

    def build(
        self, delivery: Delivery, account: ChannelAccount, ctx: SendContext
    ) -> ProviderRequest:
        if not ctx.access_token:
            raise Unsendable("missing_credential", "no access token")
        body = {"touser": delivery.recipient, **self.message(delivery)}
        return ProviderRequest(
            "POST",
            f"{ctx.base_url}/cgi-bin/message/custom/send",
            headers={IDEMPOTENCY_HEADER: delivery.message_id},
            params={"access_token": ctx.access_token},
            json=body,
        )

    @staticmethod
    def message(delivery: Delivery) -> dict[str, Any]:
        content = delivery.content
        kind = delivery.kind
        if kind == "text":
            return {"msgtype": "text", "text": {"content": content.text.body}}
        if kind == "interactive":
            i = content.interactive
            options = [(b.id, b.title) for b in i.buttons] or [
                (r.id, r.title) for s in i.sections for r in s.rows
            ]
            return {
                "msgtype": "msgmenu",
                "msgmenu": {
                    "head_content": "\n".join(p for p in (i.header, i.body) if p),
                    "list": [{"id": option_id, "content": title} for option_id, title in options],
                    "tail_content": i.footer,
                },
            }
        if kind == "media":
            m = content.media
            if not m.url:
                raise Unsendable("invalid_content", "media needs a url")
            article: dict[str, Any] = {
                "title": m.caption or m.filename or m.kind or "media",
                "description": m.caption,
                "url": m.url,
            }
            if m.kind == "image":
                article["picurl"] = m.url
            return {"msgtype": "news", "news": {"articles": [article]}}
        if kind == "template":
            raise Unsendable("unsupported_content", "message templates are a WhatsApp feature")
        raise Unsendable("unsupported_content", f"content {kind or 'empty'!r} cannot be sent")

    def parse(self, response: ProviderResponse) -> Outcome:
        data = response.json()
        if not isinstance(data, dict) or "errcode" not in data:
            if 200 <= response.status < 300:
                return Outcome.failed("bad_response", f"no errcode in {response.text()}")
            return http_outcome(response, "", "")
        errcode = int(data.get("errcode") or 0)
        errmsg = str(data.get("errmsg", ""))
        if errcode == 0 and 200 <= response.status < 300:
            return Outcome.sent("")
        if errcode in TOKEN_ERRCODES:
            return Outcome(
                "retry", error_code=str(errcode), error_message=errmsg, refresh_token=True
            )
        if errcode in RETRY_ERRCODES or response.status == 429 or response.status >= 500:
            return Outcome.retry(str(errcode), errmsg)
        return Outcome.failed(str(errcode), errmsg)
