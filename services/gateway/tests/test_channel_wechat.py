"""WeChat Official Account (plaintext mode): XML pushes with the token/timestamp/nonce signature,
end to end through the broker to parlay.gateway.inbound.v1; the GET server verification."""

from __future__ import annotations

from collections import Counter

import pytest
from channel_kit import (
    RECEIVED,
    SUBSCRIPTION,
    WEBHOOK,
    create_account,
    post,
    stored,
    wechat_event,
    wechat_query,
    wechat_text,
)
from gateway_testkit import read_topic

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels.base import MalformedPayload
from parlay_gateway.channels.wechat import normalize_xml, signature_for
from parlay_kit import envelope, topics
from parlay_kit.envelope import deterministic_event_id


def test_signature_is_sha1_of_sorted_parts() -> None:
    import hashlib

    assert (
        signature_for("token", "1409304348", "xxxxxx")
        == hashlib.sha1(b"1409304348tokenxxxxxx").hexdigest()
    )


async def test_server_verification_echoes_echostr(gateway) -> None:
    account_id = await create_account(gateway, "wechat")
    ok = await gateway.http.get(
        f"/webhooks/wechat/{account_id}",
        params={**wechat_query(), "echostr": "5838479218127813673"},
    )
    assert (ok.status_code, ok.text) == (200, "5838479218127813673")
    bad = await gateway.http.get(
        f"/webhooks/wechat/{account_id}",
        params={**wechat_query(token="guess"), "echostr": "1"},
    )
    assert bad.status_code == 403


async def test_xml_messages_and_events_end_to_end(gateway, gw_kafka) -> None:
    account_id = await create_account(gateway, "wechat")
    image = (
        b"<xml><ToUserName><![CDATA[gh_toUser]]></ToUserName><FromUserName><![CDATA[oUser2]]>"
        b"</FromUserName><CreateTime>1348831861</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        b"<PicUrl><![CDATA[http://mmbiz.qpic.cn/pic.jpg]]></PicUrl><MediaId><![CDATA[media_id_1]]>"
        b"</MediaId><MsgId>1234567890123457</MsgId></xml>"
    )
    location = (
        b"<xml><ToUserName><![CDATA[gh_toUser]]></ToUserName><FromUserName><![CDATA[oUser2]]>"
        b"</FromUserName><CreateTime>1351776360</CreateTime><MsgType><![CDATA[location]]></MsgType>"
        b"<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale>"
        b"<Label><![CDATA[Guangzhou]]></Label><MsgId>1234567890123458</MsgId></xml>"
    )
    bodies = [
        wechat_text("1234567890123456", content="你好 <b>&amp;</b>"),
        image,
        location,
        wechat_event("subscribe", user="oUser3"),
        wechat_event("unsubscribe", user="oUser3", create=123456799),
    ]
    for body in bodies:
        response = await post(
            gateway, "wechat", account_id, body, {"Content-Type": "text/xml"}, wechat_query()
        )
        assert (response.status_code, response.text) == (200, "success")
    # WeChat retries with a new nonce/timestamp: deduplicated by MsgId.
    retry = await post(
        gateway,
        "wechat",
        account_id,
        bodies[0],
        {"Content-Type": "text/xml"},
        wechat_query(nonce="42"),
    )
    assert retry.status_code == 200
    assert len(await gateway.events(WEBHOOK, account_id)) == len(bodies)

    wanted = {
        deterministic_event_id("wechat", account_id, "1234567890123456", "received"),
        deterministic_event_id("wechat", account_id, "1234567890123457", "received"),
        deterministic_event_id("wechat", account_id, "1234567890123458", "received"),
        deterministic_event_id("wechat", account_id, "oUser3", "123456789", "subscribe"),
        deterministic_event_id("wechat", account_id, "oUser3", "123456799", "unsubscribe"),
    }
    records = await read_topic(gw_kafka, topics.INBOUND, wanted, timeout=60)
    assert Counter(dict(r.headers)["ce_id"].decode() for r in records) == Counter(wanted)
    by_id = {}
    for record in records:
        env = envelope.decode(record.value)
        by_id[env.event_id] = (env, envelope.unpack(env))
    text_env, text = by_id[
        deterministic_event_id("wechat", account_id, "1234567890123456", "received")
    ]
    assert isinstance(text, pb.MessageReceived)
    assert text.content.text.body == "你好 <b>&amp;</b>"
    assert text.sender.address == "oUser1" and text.business_address == "gh_toUser"
    assert text_env.occurred_at.seconds == 1348831860
    _, pic = by_id[deterministic_event_id("wechat", account_id, "1234567890123457", "received")]
    assert (pic.content.media.kind, pic.content.media.provider_media_id) == ("image", "media_id_1")
    _, loc = by_id[deterministic_event_id("wechat", account_id, "1234567890123458", "received")]
    assert (loc.content.location.latitude, loc.content.location.name) == (23.134521, "Guangzhou")
    subs = [s.event for s in await stored(gateway, SUBSCRIPTION, account_id)]
    assert [(s.subject.address, s.subscribed, s.reason) for s in subs] == [
        ("oUser3", True, "subscribe"),
        ("oUser3", False, "unsubscribe"),
    ]
    assert len(await stored(gateway, RECEIVED, account_id)) == 3


@pytest.mark.parametrize(
    "body, where",
    [
        (b"<xml><MsgType>text</MsgType></xml>", "FromUserName"),
        (
            b"<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><CreateTime>x</CreateTime></xml>",
            "CreateTime",
        ),
        (
            b"<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><CreateTime>1</CreateTime></xml>",
            "MsgId",
        ),
        (b"<notxml/>", "root"),
    ],
)
def test_malformed_xml(body: bytes, where: str) -> None:
    with pytest.raises(MalformedPayload, match=where):
        normalize_xml(body, account_id="a", tenant_id="t", webhook_event_id="w")
