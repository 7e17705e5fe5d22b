"""GatewayService.GetMedia: an inbound media reference -> the bytes, fetched from the provider.

| channel | reference (MediaContent.provider_media_id) | how |
|---|---|---|
| whatsapp | media id | GET {graph}/{version}/{id} (Bearer) -> url; GET url (Bearer) |
| telegram | file_id | GET {api}/bot{token}/getFile -> file_path; GET {api}/file/bot{token}/{file_path} |
| wechat | MediaId | GET {api}/cgi-bin/media/get?access_token&media_id |
| line | message id | GET {api-data}/v2/bot/message/{id}/content (Bearer) |
| twilio | MediaUrl (or its ME sid + message sid as "MM.../ME...") | GET (basic auth) |
| messenger, instagram, viber | the attachment URL | GET |

URLs given by the caller are fetched only from the provider's own hosts (its API base URL's host,
plus the CDN hosts in ALLOWED_MEDIA_HOSTS), never from anywhere else: GetMedia must not become a
way to make the gateway fetch arbitrary URLs.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from parlay.gateway.v1 import gateway_service_pb2 as pb
from parlay_gateway.account_store import AccountDirectory
from parlay_gateway.accounts import ChannelAccount
from parlay_gateway.outbound.senders import SenderRegistry
from parlay_gateway.outbound.settings import OutboundSettings
from parlay_kit.auth import current_tenant
from parlay_kit.errors import FailedPrecondition, InvalidArgument, NotFound

#: CDN hosts (suffixes) media URLs of each channel may live on, besides its API host.
ALLOWED_MEDIA_HOSTS: dict[str, tuple[str, ...]] = {
    "whatsapp": ("lookaside.fbsbx.com", "fbcdn.net"),
    "messenger": ("fbcdn.net", "fbsbx.com", "facebook.com"),
    "instagram": ("fbcdn.net", "cdninstagram.com", "fbsbx.com", "instagram.com"),
    "twilio": ("twilio.com", "twiliocdn.com"),
    "viber": ("viber.com", "viber.io"),
    "telegram": (),
    "wechat": (),
    "line": (),
}
_TWILIO_REF = re.compile(r"^(MM[0-9a-fA-F]{32})/(ME[0-9a-fA-F]{32})$")


@dataclass(frozen=True, slots=True)
class MediaBytes:
    data: bytes
    mime_type: str
    filename: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class MediaResolver:
    def __init__(
        self,
        directory: AccountDirectory,
        settings: OutboundSettings,
        senders: SenderRegistry,
        *,
        client: httpx.AsyncClient | None = None,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.senders = senders
        self.max_bytes = max_bytes
        self._client = client
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, connect=self.settings.outbound_connect_timeout_seconds),
                follow_redirects=False,
                headers={"User-Agent": "parlay-gateway/0.1"},
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def resolve(self, tenant_id: str, channel_account_id: str, reference: str) -> MediaBytes:
        if not channel_account_id:
            raise InvalidArgument("channel_account_id", "is required")
        if not reference:
            raise InvalidArgument("provider_media_id", "is required")
        account = await self.directory.get(channel_account_id)
        if account is None or account.tenant_id != tenant_id:
            raise NotFound(f"channel account {channel_account_id!r} not found")
        channel = account.channel
        base = self.settings.base_url(channel, account)
        if channel == "whatsapp":
            return await self._whatsapp(account, base, reference)
        if channel == "telegram":
            return await self._telegram(account, base, reference)
        if channel == "wechat":
            return await self._wechat(account, base, reference)
        if channel == "line":
            token = account.credential("access_token")
            url = f"{self.settings.line_data_base_url(account)}/v2/bot/message/{_segment(reference)}/content"
            return await self._download(url, headers={"Authorization": f"Bearer {token}"})
        if channel == "twilio":
            sid = account.credential("account_sid")
            match = _TWILIO_REF.match(reference)
            url = (
                f"{base}/2010-04-01/Accounts/{sid}/Messages/{match[1]}/Media/{match[2]}"
                if match
                else self._allowed_url(channel, base, reference)
            )
            return await self._download(
                url,
                auth=(sid, account.credential("auth_token")),
                follow=True,
                channel=channel,
                base=base,
            )
        if channel in ("messenger", "instagram", "viber"):
            url = self._allowed_url(channel, base, reference)
            return await self._download(url, follow=True, channel=channel, base=base)
        raise FailedPrecondition(f"channel {channel} has no provider media to fetch")

    # ------------------------------------------------------------ channels

    async def _whatsapp(self, account: ChannelAccount, base: str, media_id: str) -> MediaBytes:
        token = account.credential("access_token")
        auth = {"Authorization": f"Bearer {token}"}
        info = await self._get(
            f"{base}/{self.settings.api_version(account)}/{_segment(media_id)}", headers=auth
        )
        data = _json(info)
        if info.status_code != 200 or not isinstance(data, dict) or not data.get("url"):
            raise _provider_error("whatsapp", info)
        url = self._allowed_url("whatsapp", base, str(data["url"]))
        media = await self._download(url, headers=auth)
        return MediaBytes(media.data, str(data.get("mime_type") or media.mime_type), media.filename)

    async def _telegram(self, account: ChannelAccount, base: str, file_id: str) -> MediaBytes:
        token = account.credential("bot_token")
        info = await self._get(f"{base}/bot{token}/getFile", params={"file_id": file_id})
        data = _json(info)
        if not isinstance(data, dict) or not data.get("ok"):
            raise _provider_error("telegram", info)
        file_path = str(data["result"].get("file_path", ""))
        if not file_path or ".." in file_path:
            raise FailedPrecondition("telegram gave no downloadable file_path (over 20 MB?)")
        media = await self._download(f"{base}/file/bot{token}/{file_path}")
        return MediaBytes(media.data, media.mime_type, file_path.rsplit("/", 1)[-1])

    async def _wechat(self, account: ChannelAccount, base: str, media_id: str) -> MediaBytes:
        sender = self.senders.get("wechat")
        assert sender is not None
        key = (base, account.channel_account_id)
        hit = self._tokens.get(key)
        if hit is None or hit[1] <= time.monotonic():
            from parlay_gateway.outbound.senders.base import SendContext

            request = sender.token_request(account, SendContext(base_url=base))
            assert request is not None
            response = await self._get(request.url, params=dict(request.params or {}))
            from parlay_gateway.outbound.senders.base import ProviderResponse, Unsendable

            try:
                token, ttl = sender.parse_token(
                    ProviderResponse(response.status_code, dict(response.headers), response.content)
                )
            except Unsendable as exc:
                raise FailedPrecondition(f"wechat: {exc.message}") from exc
            hit = (token, time.monotonic() + max(30.0, ttl - 300.0))
            self._tokens[key] = hit
        response = await self._get(
            f"{base}/cgi-bin/media/get", params={"access_token": hit[0], "media_id": media_id}
        )
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or "json" in content_type or "text/plain" in content_type:
            raise _provider_error("wechat", response)
        return MediaBytes(
            response.content,
            content_type.split(";")[0] or "application/octet-stream",
            _filename(response),
        )

    # ------------------------------------------------------------ http

    def _allowed_url(self, channel: str, base: str, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidArgument("provider_media_id", f"{channel} media is referenced by its URL")
        host = parts.hostname.lower()
        api_host = (urlsplit(base).hostname or "").lower()
        allowed = (api_host, *ALLOWED_MEDIA_HOSTS.get(channel, ()))
        if not any(host == h or host.endswith("." + h) for h in allowed if h):
            raise InvalidArgument("provider_media_id", f"{host} is not a {channel} media host")
        return url

    async def _get(self, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise FailedPrecondition(f"provider unreachable: {type(exc).__name__}") from exc

    async def _download(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        follow: bool = False,
        channel: str = "",
        base: str = "",
    ) -> MediaBytes:
        for _hop in range(5):
            try:
                async with self.client.stream("GET", url, headers=headers, auth=auth) as response:
                    if follow and response.status_code in (301, 302, 303, 307, 308):
                        location = response.headers.get("location", "")
                        # Twilio's media URL redirects to its storage; follow without credentials.
                        url = str(httpx.URL(url).join(location))
                        headers, auth = None, None
                        continue
                    if response.status_code != 200:
                        await response.aread()
                        raise _provider_error(channel or "provider", response)
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > self.max_bytes:
                        raise FailedPrecondition(
                            f"media is {declared} bytes, over {self.max_bytes}"
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FailedPrecondition(f"media is over {self.max_bytes} bytes")
                        chunks.append(chunk)
                    mime = response.headers.get("content-type", "application/octet-stream")
                    return MediaBytes(
                        b"".join(chunks), mime.split(";")[0].strip(), _filename(response)
                    )
            except httpx.HTTPError as exc:
                raise FailedPrecondition(f"provider unreachable: {type(exc).__name__}") from exc
        del base
        raise FailedPrecondition("too many redirects")


def _segment(value: str) -> str:
    if "/" in value or "?" in value or "#" in value or value in (".", ".."):
        raise InvalidArgument("provider_media_id", "is not a media id")
    return value


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _filename(response: httpx.Response) -> str:
    disposition = response.headers.get("content-disposition", "")
    match = re.search(r'filename="?([^";]+)"?', disposition)
    return match[1] if match else ""


def _provider_error(channel: str, response: httpx.Response) -> Exception:
    if response.status_code == 404 or response.status_code == 400:
        return NotFound(
            f"{channel} media not found ({response.status_code}): {response.text[:300]}"
        )
    if response.status_code == 200:
        # WeChat answers errors with 200 + JSON errcode
        data = _json(response)
        if isinstance(data, dict) and data.get("errcode") in (40007,):
            return NotFound(f"{channel} media not found: {data.get('errmsg')}")
        return FailedPrecondition(f"{channel} refused the media request: {response.text[:300]}")
    return FailedPrecondition(f"{channel} answered {response.status_code}: {response.text[:300]}")


class MediaServicerMixin:
    """GetMedia for the GatewayService servicer (mixed in by the composition root)."""

    media: MediaResolver

    async def GetMedia(  # noqa: N802 - gRPC method name
        self, request: pb.GetMediaRequest, context: Any
    ) -> pb.GetMediaResponse:
        media = await self.media.resolve(
            current_tenant(), request.channel_account_id, request.provider_media_id
        )
        return pb.GetMediaResponse(
            data=media.data, mime_type=media.mime_type, filename=media.filename, sha256=media.sha256
        )
