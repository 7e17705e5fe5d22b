"""Pure inbox rules: lifecycle, service windows, sending, statuses, SLA clocks, automation and
the bot, proactive texts, configuration validation. No I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import struct_pb2

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import automation, config, domain, proactive
from parlay_kit.errors import ConcurrencyError, FailedPrecondition, InvalidArgument

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
WINDOWS = domain.DEFAULT_SERVICE_WINDOWS


def inbound(
    src: str,
    *,
    at: datetime = T0,
    channel: str = "whatsapp",
    text: str = "hi",
    address: str = "16505551234",
) -> domain.InboundMessage:
    return domain.InboundMessage(
        tenant_id="t1",
        source_event_id=src,
        channel=channel,
        channel_account_id=f"{channel}-acc",
        address=address,
        provider_message_id=f"pm.{src}",
        content=ge.MessageContent(text=ge.TextContent(body=text)),
        occurred_at=at,
    )


class Conv:
    """A conversation driven through the pure rules, as the writers drive it."""

    def __init__(self, *messages: domain.InboundMessage, bot_first: bool = False) -> None:
        self.state: domain.ConversationState | None = None
        self.effects: list[domain.Effect] = []
        self.events: list[domain.ConversationEvent] = []
        for m in messages:
            self.inbound(m, bot_first=bot_first)

    def add(self, events: list[domain.ConversationEvent]) -> list[domain.ConversationEvent]:
        for e in events:
            self.state, produced = domain.apply_event(self.state, e)
            self.effects += produced
            self.events.append(e)
        return events

    def inbound(self, m: domain.InboundMessage, bot_first: bool = False) -> None:
        self.add(domain.decide_inbound(self.state, "c1", m, bot_first=bot_first))

    @property
    def s(self) -> domain.ConversationState:
        assert self.state is not None
        return self.state


def ids(prefix: str):
    return lambda kind: f"{prefix}:{kind}"


def text(body: str) -> ge.OutboundContent:
    return ge.OutboundContent(text=ge.TextContent(body=body))


# ------------------------------------------------------------------------------- lifecycle


def test_lifecycle_snooze_resolve_and_reopen_on_inbound_start_a_new_cycle() -> None:
    c = Conv(inbound("e1"))
    assert (c.s.status, c.s.cycle, c.s.cycle_started_at) == ("open", 1, T0)
    later = T0 + timedelta(hours=1)
    c.add(
        domain.decide_status_change(
            c.s,
            "snoozed",
            actor="agent:ana",
            reason="agent",
            at=T0,
            event_id=ids("s"),
            snoozed_until=later,
        )
    )
    assert (c.s.status, c.s.snoozed_until) == ("snoozed", later)
    # Same snooze again: nothing.
    assert (
        domain.decide_status_change(
            c.s,
            "snoozed",
            actor="x",
            reason="agent",
            at=T0,
            event_id=ids("s2"),
            snoozed_until=later,
        )
        == []
    )
    with pytest.raises(InvalidArgument):
        domain.decide_status_change(
            c.s, "snoozed", actor="x", reason="a", at=T0, event_id=ids("x"), snoozed_until=T0
        )
    c.add(
        domain.decide_status_change(
            c.s, "resolved", actor="a", reason="a", at=T0, event_id=ids("r")
        )
    )
    assert (c.s.status, c.s.snoozed_until, c.s.resolved_at) == ("resolved", None, T0)
    # A new inbound message reopens, in a new SLA cycle.
    c.inbound(inbound("e2", at=T0 + timedelta(days=1)))
    kinds = [type(e.payload).__name__ for e in c.events[-2:]]
    assert kinds == ["ConversationStatusChanged", "MessageAppended"]
    assert c.events[-2].payload.reason == "inbound_message"
    assert (c.s.status, c.s.cycle) == ("open", 2)
    assert c.s.cycle_started_at == T0 + timedelta(days=1)
    assert c.s.awaiting_since == T0 + timedelta(days=1)


def test_pending_and_snoozed_reopen_without_a_new_cycle() -> None:
    c = Conv(inbound("e1"))
    c.add(
        domain.decide_status_change(c.s, "pending", actor="a", reason="a", at=T0, event_id=ids("p"))
    )
    c.inbound(inbound("e2", at=T0 + timedelta(minutes=1)))
    assert (c.s.status, c.s.cycle) == ("open", 1)


def test_contacts_windows_and_unread_and_read() -> None:
    c = Conv(
        inbound("e1", at=T0),
        inbound("e2", at=T0 + timedelta(hours=2), channel="sms", address="+16505551234"),
        inbound("e3", at=T0 + timedelta(hours=1)),  # older, late: the window keeps e1..?
    )
    wa = c.s.contact("whatsapp")
    assert wa is not None and wa.last_inbound_at == T0 + timedelta(hours=1)
    assert c.s.contact("sms").address == "+16505551234"
    assert (c.s.last_channel, c.s.unread_count) == ("sms", 3)
    assert c.s.channels == ("sms", "whatsapp")
    c.add(domain.decide_read(c.s, actor="agent:ana", at=T0, event_id=ids("read")))
    assert (c.s.unread_count, c.s.read_through_seq) == (0, 3)
    assert domain.decide_read(c.s, actor="agent:ana", at=T0, event_id=ids("again")) == []


# ------------------------------------------------------------------------------- windows, sending


def test_window_refuses_free_form_after_24h_with_when_it_closed_but_a_template_passes() -> None:
    c = Conv(inbound("e1", at=T0))
    contact = c.s.contact("whatsapp")
    domain.check_window(contact, "whatsapp", "text", WINDOWS, T0 + timedelta(hours=23))
    with pytest.raises(FailedPrecondition) as err:
        domain.check_window(contact, "whatsapp", "text", WINDOWS, T0 + timedelta(hours=25))
    message = str(err.value)
    assert "whatsapp customer-service window (24h) closed at 2024-05-02T12:00:00+00:00" in message
    domain.check_window(contact, "whatsapp", "template", WINDOWS, T0 + timedelta(days=9))
    # WeChat: 48 hours; SMS has no window.
    wechat = domain.ChannelContact("wechat", "wc", "o1", T0)
    domain.check_window(wechat, "wechat", "text", WINDOWS, T0 + timedelta(hours=47))
    with pytest.raises(FailedPrecondition, match=r"wechat customer-service window \(48h\)"):
        domain.check_window(wechat, "wechat", "media", WINDOWS, T0 + timedelta(hours=49))
    domain.check_window(None, "sms", "text", WINDOWS, T0 + timedelta(days=90))
    with pytest.raises(FailedPrecondition, match="has not written on whatsapp"):
        domain.check_window(None, "whatsapp", "interactive", WINDOWS, T0)


def test_send_goes_to_the_last_channel_unless_named() -> None:
    c = Conv(
        inbound("e1", at=T0),
        inbound("e2", at=T0 + timedelta(minutes=1), channel="sms", address="+1650"),
    )
    out = domain.Outbound(message_id="m1", content=text("hello"), sender="agent:ana")
    events, contact = domain.decide_send(
        c.s, out, at=T0 + timedelta(minutes=2), windows=WINDOWS, event_id="ev1"
    )
    [e] = events
    req = e.payload
    assert isinstance(req, ce.OutboundMessageRequested)
    assert (req.channel, req.channel_account_id, req.recipient_address) == (
        "sms",
        "sms-acc",
        "+1650",
    )
    assert (req.message_id, req.sender, req.purpose, req.text) == (
        "m1",
        "agent:ana",
        "transactional",
        "hello",
    )
    assert (e.event_id, e.version) == ("ev1", c.s.version + 1)
    named = replace(out, channel="whatsapp")
    [e2], contact = domain.decide_send(c.s, named, at=T0, windows=WINDOWS, event_id="ev2")
    assert (e2.payload.channel, e2.payload.recipient_address) == ("whatsapp", "16505551234")
    with pytest.raises(FailedPrecondition, match="no known address on telegram"):
        domain.decide_send(
            c.s, replace(out, channel="telegram"), at=T0, windows=WINDOWS, event_id="x"
        )


def test_outbound_message_joins_the_timeline_and_statuses_only_move_forward() -> None:
    c = Conv(inbound("e1"))
    out = domain.Outbound(message_id="m1", content=text("hello"), sender="agent:ana")
    c.add(domain.decide_send(c.s, out, at=T0, windows=WINDOWS, event_id="ev1")[0])
    row = c.effects[-1]
    assert isinstance(row, domain.TimelineMessage)
    assert (row.direction, row.status, row.seq, row.sender) == (
        "outbound",
        "pending",
        2,
        "agent:ana",
    )
    assert c.s.first_response_at == T0 and c.s.awaiting_since is None
    current = "pending"
    seen = []
    for new in ["read", "sent", "delivered", "failed", "read"]:
        events = domain.decide_status(
            c.s,
            message_id="m1",
            current_status=current,
            new_status=new,
            provider_message_id="wamid.1",
            status_at=T0,
            source_event_id=f"src-{new}-{len(seen)}",
        )
        if events:
            current = new
            c.add(events)
        seen.append(current)
    assert seen == ["read"] * 5
    # sent < failed < delivered < read: a failure after sent counts, not after delivered.
    assert domain.status_moves_forward("sent", "failed")
    assert not domain.status_moves_forward("delivered", "failed")
    assert not domain.status_moves_forward("read", "delivered")


def test_expected_version_mismatch_is_a_concurrency_error() -> None:
    c = Conv(inbound("e1"))
    domain.check_version(c.s, 0)
    domain.check_version(c.s, c.s.version)
    with pytest.raises(ConcurrencyError):
        domain.check_version(c.s, c.s.version - 1)


# ------------------------------------------------------------------------------- SLA


def test_sla_clocks_and_deterministic_breaches() -> None:
    c = Conv(inbound("e1", at=T0))
    targets = domain.SlaTargets(first_response_seconds=60, resolution_seconds=3600)
    assert domain.decide_sla_breaches(c.s, targets, T0 + timedelta(seconds=59)) == []
    breaches = domain.decide_sla_breaches(c.s, targets, T0 + timedelta(hours=2))
    assert [(b.payload.kind, b.payload.cycle) for b in breaches] == [
        ("first_response", 1),
        ("resolution", 1),
    ]
    assert [b.version for b in breaches] == [c.s.version + 1, c.s.version + 2]
    assert breaches[0].event_id == domain.sla_breach_event_id(
        c.s.conversation_id, "first_response", 1
    )
    assert breaches[0].occurred_at == T0 + timedelta(seconds=60)
    c.add(breaches)
    assert domain.decide_sla_breaches(c.s, targets, T0 + timedelta(days=2)) == []
    # A bot conversation has no running first-response clock until it is handed to a human.
    bot = Conv(inbound("b1", at=T0), bot_first=True)
    assert bot.s.handler == "bot" and bot.s.awaiting_since is None
    assert domain.decide_sla_breaches(bot.s, targets, T0 + timedelta(days=1)) == []
    bot.add(
        domain.decide_handoff(
            bot.s,
            to="human",
            reason="customer_request",
            actor="bot",
            at=T0 + timedelta(minutes=5),
            event_id=ids("h"),
        )
    )
    assert bot.s.awaiting_since == T0 + timedelta(minutes=5)


def test_owner_follows_merges() -> None:
    c = Conv(inbound("e1"))
    c.add(
        domain.decide_owner(
            c.s, "survivor", reason="merged", merge_id="m1", at=T0, event_id=ids("o")
        )
    )
    assert (c.s.owner, c.s.customer_id) == ("survivor", "c1")
    assert (
        domain.decide_owner(
            c.s, "survivor", reason="merged", merge_id="m1", at=T0, event_id=ids("o2")
        )
        == []
    )
    c.add(
        domain.decide_owner(c.s, "c1", reason="unmerged", merge_id="m1", at=T0, event_id=ids("o3"))
    )
    assert c.s.owner == "c1"


# ------------------------------------------------------------------------------- automation


def settings(**kw) -> ce.InboxSettings:
    return ce.InboxSettings(**kw)


def test_handoff_keywords_match_words_case_and_accents_insensitively() -> None:
    s = settings()
    assert automation.asks_for_human("I want to talk to an AGENT please", s)
    assert automation.asks_for_human("Quiero hablar con una persona", s)
    assert automation.asks_for_human("¿Un humano?", s)
    assert not automation.asks_for_human("agenda for tomorrow", s)
    assert automation.asks_for_human("operador", s)
    assert not automation.asks_for_human("operador", settings(handoff_keywords=["manager"]))
    assert automation.asks_order_status("Where's my order??")
    assert automation.asks_order_status("¿Dónde está mi pedido?")
    assert automation.asks_opening_hours("What are your opening hours?")
    assert automation.asks_opening_hours("Öffnungszeiten?")


def test_bot_answers_hands_off_on_request_and_after_misses() -> None:
    s = settings(
        bot_enabled=True,
        opening_hours=[
            ce.OpeningHours(weekdays=[1, 2, 3, 4, 5], open_time="09:00", close_time="18:00")
        ],
    )
    c = Conv(inbound("e1"), bot_first=True)
    plan = automation.plan(
        c.s, text="opening hours?", channel="whatsapp", at=T0, settings=s, rules=[]
    )
    assert plan == [automation.Reply("Our opening hours: Mon-Fri 09:00-18:00 (UTC).", "bot")]
    plan = automation.plan(
        c.s, text="where is my order", channel="whatsapp", at=T0, settings=s, rules=[]
    )
    assert plan == [automation.LookUpOrderStatus()]
    plan = automation.plan(c.s, text="blah", channel="whatsapp", at=T0, settings=s, rules=[])
    assert plan == [automation.Reply(automation.DEFAULT_BOT_FALLBACK, "bot:fallback")]
    # After the fallback was sent once, the next miss hands off (default: 2 in a row).
    missed = replace(c.s, bot_unanswered=1)
    plan = automation.plan(missed, text="blah", channel="whatsapp", at=T0, settings=s, rules=[])
    assert plan[0] == automation.HandOff("human", "bot_unanswered", "")
    plan = automation.plan(c.s, text="agent!", channel="whatsapp", at=T0, settings=s, rules=[])
    assert plan == [
        automation.HandOff("human", "customer_request", ""),
        automation.Reply(automation.DEFAULT_HANDOFF_REPLY, "bot"),
    ]
    # With a human, the bot stays quiet.
    human = replace(c.s, handler="human")
    assert (
        automation.plan(human, text="agent", channel="whatsapp", at=T0, settings=s, rules=[]) == []
    )


def test_bot_stays_quiet_when_the_customer_answers_an_order() -> None:
    s = settings(bot_enabled=True)
    c = Conv(inbound("e1"), bot_first=True)
    cart = ge.MessageContent(order=ge.OrderContent(items=[ge.OrderItem(sku="A", quantity=1)]))
    button = ge.MessageContent(
        interactive_reply=ge.InteractiveReplyContent(reply_id="confirm:o1", title="Confirm")
    )
    for content in (
        cart,
        button,
        *(
            ge.MessageContent(text=ge.TextContent(body=t))
            for t in ("OK", "Sí!", "oui.", "ja", "👍")
        ),
    ):
        assert automation.answers_the_business(content)
        text = domain.render_text(content)
        plan = automation.plan(
            c.s, text=text, channel="whatsapp", at=T0, settings=s, rules=[], answers_business=True
        )
        assert plan == []
    sentence = ge.MessageContent(text=ge.TextContent(body="ok but where is my order"))
    assert not automation.answers_the_business(sentence)


def test_fallback_counter_follows_bot_replies() -> None:
    c = Conv(inbound("e1"), bot_first=True)
    fallback = domain.Outbound(message_id="m1", content=text("?"), sender="bot:fallback")
    c.add(domain.decide_send(c.s, fallback, at=T0, windows=WINDOWS, event_id="x1")[0])
    assert c.s.bot_unanswered == 1
    answer = domain.Outbound(message_id="m2", content=text("9-5"), sender="bot")
    c.add(domain.decide_send(c.s, answer, at=T0, windows=WINDOWS, event_id="x2")[0])
    assert c.s.bot_unanswered == 0
    # Bot replies are no human first response.
    assert c.s.first_response_at is None


def rule(**kw) -> ce.AutomationRule:
    condition = kw.pop("condition", ce.RuleCondition())
    action = kw.pop("action", ce.RuleAction())
    return config.validate_rule(
        ce.AutomationRule(enabled=True, condition=condition, action=action, **kw)
    )


def test_rules_on_keyword_regex_channel_and_time_of_day() -> None:
    c = Conv(inbound("e1"))
    s = settings(time_zone="Europe/Madrid")
    refund = rule(
        rule_id="refund",
        priority=1,
        condition=ce.RuleCondition(keywords=["refund", "reembolso"]),
        action=ce.RuleAction(add_labels=["Billing"], assign_team_id="billing"),
    )
    vip = rule(
        rule_id="vip",
        priority=2,
        condition=ce.RuleCondition(regex=r"order\s+#?\d{5}"),
        action=ce.RuleAction(reply_text="Checking order..."),
        stop_processing=True,
    )
    night = rule(
        rule_id="night",
        priority=3,
        condition=ce.RuleCondition(from_time="22:00", to_time="07:00", channels=["whatsapp"]),
        action=ce.RuleAction(reply_text="We're closed, back at 7."),
    )
    rules = [night, vip, refund]
    madrid_noon = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)  # 12:00 in Madrid
    madrid_night = datetime(2024, 5, 1, 22, 30, tzinfo=UTC)  # 00:30 in Madrid
    plan = automation.plan(
        c.s, text="I want a REFUND", channel="whatsapp", at=madrid_noon, settings=s, rules=rules
    )
    assert plan == [
        automation.AddLabels(("billing",), "automation:refund"),
        automation.Assign("", "billing", "rule:refund"),
    ]
    plan = automation.plan(
        c.s, text="about order #12345", channel="whatsapp", at=madrid_night, settings=s, rules=rules
    )
    assert plan == [automation.Reply("Checking order...", "automation:vip")]  # stop_processing
    plan = automation.plan(
        c.s, text="hello", channel="whatsapp", at=madrid_night, settings=s, rules=rules
    )
    assert plan == [automation.Reply("We're closed, back at 7.", "automation:night")]
    assert (
        automation.plan(c.s, text="hello", channel="sms", at=madrid_night, settings=s, rules=rules)
        == []
    )
    disabled = ce.AutomationRule()
    disabled.CopyFrom(night)
    disabled.enabled = False
    assert (
        automation.plan(
            c.s, text="hello", channel="whatsapp", at=madrid_night, settings=s, rules=[disabled]
        )
        == []
    )


def test_rule_and_settings_validation_names_the_field() -> None:
    cases = [
        (lambda: rule(rule_id="", action=ce.RuleAction(reply_text="x")), "rule.rule_id"),
        (lambda: rule(rule_id="r"), "rule.action"),
        (
            lambda: rule(
                rule_id="r",
                condition=ce.RuleCondition(regex="("),
                action=ce.RuleAction(reply_text="x"),
            ),
            "rule.condition.regex",
        ),
        (
            lambda: rule(
                rule_id="r",
                condition=ce.RuleCondition(from_time="25:00", to_time="1:00"),
                action=ce.RuleAction(reply_text="x"),
            ),
            "rule.condition.from_time",
        ),
        (lambda: config.validate_settings(settings(time_zone="Mars/Base")), "settings.time_zone"),
        (
            lambda: config.validate_settings(settings(assignment_mode="random")),
            "settings.assignment_mode",
        ),
        (lambda: config.validate_agent(ce.Agent(agent_id="a b")), "agent.agent_id"),
        (lambda: config.validate_agent(ce.Agent(agent_id="ana", capacity=-1)), "agent.capacity"),
        (lambda: config.normalize_labels(["ok", ""]), "labels"),
    ]
    for build, field in cases:
        with pytest.raises(InvalidArgument) as err:
            build()
        assert err.value.field == field


# ------------------------------------------------------------------------------- proactive


def test_proactive_texts_from_event_fields_by_name() -> None:
    payload = struct_pb2.Struct()
    payload.update(
        {
            "order_id": "o-1",
            "customer_id": "c1",
            "total_minor": 24950,
            "currency": "MXN",
            "checkout_url": "https://pay.example/s/1",
        }
    )
    fields = proactive.fields_of(payload)
    assert fields["total"] == "249.50 MXN"
    plan, why = proactive.plan_for("parlay.payments.v1.PaymentLinkCreated", fields, settings())
    assert why == "" and plan is not None
    assert plan.text == "Pay for your order o-1 here: https://pay.example/s/1"
    assert plan.purpose == "transactional"
    custom = settings(
        proactive={
            "parlay.orders.v1.OrderPaid": ce.ProactiveMessage(
                text="Paid {total}!", purpose="marketing"
            ),
            "parlay.orders.v1.OrderConfirmed": ce.ProactiveMessage(disabled=True),
        }
    )
    plan, _ = proactive.plan_for("parlay.orders.v1.OrderPaid", fields, custom)
    assert plan is not None and (plan.text, plan.purpose) == ("Paid 249.50 MXN!", "marketing")
    assert proactive.plan_for("parlay.orders.v1.OrderConfirmed", fields, custom) == (
        None,
        "disabled",
    )
    plan, why = proactive.plan_for(
        "parlay.payments.v1.PaymentLinkCreated", {"order_id": "x"}, settings()
    )
    assert (plan, why) == (None, "missing_field")
    # Real protobuf payloads are read the same way (nested fields by leaf name too).
    nested = ce.OutboundMessageStatusChanged(conversation_id="cv", message_id="m")
    assert proactive.fields_of(nested)["message_id"] == "m"
    assert proactive.money(1000, "JPY") == "1,000 JPY"


def test_thank_you_is_the_next_local_day() -> None:
    s = settings(time_zone="America/Mexico_City", thank_you_time="10:00")
    paid = datetime(2024, 5, 2, 3, 0, tzinfo=UTC)  # May 1st, 21:00 in Mexico City
    due = config.next_day_at(paid, s.thank_you_time, s)
    assert due.astimezone(UTC) == datetime(2024, 5, 2, 16, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------- rendering


def test_stored_message_entries_render_as_the_api_message() -> None:
    from parlay.conversation.v1 import conversation_service_pb2 as cs
    from parlay_conversation import render

    c = Conv(inbound("e1", text="hola"))
    out = domain.Outbound(
        message_id="m1",
        content=ge.OutboundContent(
            template=ge.TemplateContent(
                name="t", language="en", body_parameters=[ge.TemplateParameter(text="A")]
            )
        ),
        sender="agent:ana",
        client_message_id="c-1",
    )
    c.add(domain.decide_send(c.s, out, at=T0, windows=WINDOWS, event_id="x")[0])
    rows = [e for e in c.effects if isinstance(e, domain.TimelineMessage)]
    entries = b"".join(render.message_entry(m) for m in rows)
    conversation = cs.Conversation.FromString(entries)
    inbound_row, outbound_row = rows
    assert conversation.messages[0] == render.message_to_proto(inbound_row)
    assert conversation.messages[0].content.text.body == "hola"
    sent = conversation.messages[1]
    render.set_progress(sent, "read", T0, "wamid.9", "", "")
    expected = render.message_to_proto(
        replace(outbound_row, status="read", provider_message_id="wamid.9")
    )
    assert sent == expected
    assert sent.outbound_content.template.name == "t"


def test_the_order_status_answer_is_on_with_orders_list_orders() -> None:
    from parlay_conversation import orders_client

    assert orders_client.supported()  # orders serves ListOrders(customer_id)
    assert (
        orders_client.describe(
            type("Order", (), {"order_id": "o-7", "status": "OUT_FOR_DELIVERY"})()
        )
        == "Your order o-7 is out for delivery."
    )
