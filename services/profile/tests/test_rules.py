"""Pure identity-graph, merge, consent and profile-data rules over a whole world in memory."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_kit.errors import ConcurrencyError, FailedPrecondition, InvalidArgument, NotFound
from parlay_profile import domain, rules, view
from parlay_profile.memory import InMemoryProfiles

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
_n = 0


def src() -> str:
    global _n
    _n += 1
    return f"src-{_n}"


def msg(
    address: str,
    *,
    channel: str = "whatsapp",
    at: datetime = T0,
    name: str = "",
    tenant: str = "t1",
    text: str = "",
    phone: str = "",
    location=None,
) -> rules.Observation:
    return rules.observation(
        tenant_id=tenant,
        channel=channel,
        address=address,
        channel_account_id="acc",
        display_name=name,
        vouched_phone=phone,
        occurred_at=at,
        source_event_id=src(),
        text=text,
        location=location,
    )


def evidence(
    subject: tuple[str, str],
    kind: str,
    *,
    phone: str = "",
    email: str = "",
    at: datetime = T0,
    tenant: str = "t1",
    source: str | None = None,
):
    return rules.EvidenceObservation(
        tenant_id=tenant,
        channel=subject[0],
        channel_account_id="acc",
        subject_channel=subject[0],
        subject_address=subject[1],
        kind=kind,
        phone=phone,
        email=email,
        occurred_at=at,
        source_event_id=source or src(),
    )


def subscription(
    subject: tuple[str, str], subscribed: bool, *, at: datetime = T0, reason: str = "unfollow"
):
    return rules.SubscriptionObservation(
        tenant_id="t1",
        channel=subject[0],
        channel_account_id="acc",
        subject_channel=subject[0],
        subject_address=subject[1],
        subscribed=subscribed,
        reason=reason,
        occurred_at=at,
        source_event_id=src(),
    )


def kinds(events) -> list[str]:
    return [type(e.payload).__name__ for e in events]


def cmd(w: InMemoryProfiles, name: str, *args, **kw):
    kw.setdefault("at", T0 + timedelta(hours=1))
    kw.setdefault("command_id", src())
    return w.command(name, *args, **kw)


def comparable(v: view.CustomerView) -> view.CustomerView:
    return dataclasses.replace(v, version=0)


# ------------------------------------------------------------------------------- identity graph


def test_whatsapp_and_sms_from_one_number_are_one_customer() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505551234", name="Ana"))
    events = w.observe(msg("+16505551234", channel="twilio", at=T0 + timedelta(minutes=5)))
    assert kinds(events) == ["IdentityLinked", "CustomerSeen"]
    linked = events[0].payload
    assert linked.evidence.rule == domain.RULE_SAME_PHONE
    assert "whatsapp:16505551234" in linked.evidence.note
    wa = w.owner("t1", "whatsapp", "16505551234")
    assert w.owner("t1", "twilio", "+16505551234") == wa
    assert len(w.roots()) == 1
    assert {c for c, _ in w.state(wa).seen.items()} == {"whatsapp", "twilio"}


def test_differently_formatted_numbers_are_one_customer() -> None:
    w = InMemoryProfiles()
    w.observe(msg("+1 (650) 555-0100", channel="sms"))
    w.observe(msg("16505550100", channel="sms", at=T0 + timedelta(minutes=1)))
    w.observe(msg("1 650 555 0100", channel="whatsapp", at=T0 + timedelta(minutes=2)))
    [root] = w.roots()
    assert len(w.state(root).identities) == 3
    assert {i.normalized_phone for i in w.state(root).identities.values()} == {"+16505550100"}


def test_same_name_different_numbers_are_two_customers() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550001", name="Maria Garcia"))
    w.observe(msg("16505550002", name="Maria Garcia"))
    assert len(w.roots()) == 2
    assert not any(isinstance(e.payload, pe.ProfilesMerged) for e in w.log)


def test_nothing_crosses_tenants() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550003", tenant="a"))
    w.observe(msg("+16505550003", channel="sms", tenant="b"))
    w.observe(evidence(("telegram", "42"), "shared_phone", phone="+16505550003", tenant="b"))
    assert len(w.roots("a")) == 1 and len(w.roots("b")) == 1
    assert w.state(w.roots("a")[0]).identities.keys() == {("whatsapp", "16505550003")}
    assert len(w.view(w.roots("b")[0]).identities) == 3  # sms, telegram, phone


def test_phone_shared_on_telegram_merges_into_the_older_customer() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550004", name="Ana"))
    w.observe(msg("777", channel="telegram", name="ana_tg", at=T0 + timedelta(hours=1)))
    wa = w.owner("t1", "whatsapp", "16505550004")
    tg = w.owner("t1", "telegram", "777")
    assert wa != tg
    ev = evidence(
        ("telegram", "777"), "shared_phone", phone="+1 650 555 0004", at=T0 + timedelta(hours=2)
    )
    events = w.observe(ev)
    assert kinds(events) == ["IdentityLinked", "ProfilesMerged", "CustomerMergedInto"]
    linked, merged, merged_into = (e.payload for e in events)
    assert linked.customer_id == tg
    assert (linked.identity.channel, linked.identity.address) == ("phone", "+16505550004")
    assert linked.evidence.rule == domain.RULE_SHARED_PHONE
    assert (merged.survivor_customer_id, merged.merged_customer_id) == (wa, tg)
    assert merged.evidence.rule == domain.RULE_SHARED_PHONE
    assert merged.evidence.source_event_id == ev.source_event_id
    assert merged.evidence.actor == domain.SYSTEM_ACTOR
    assert merged_into.survivor_customer_id == wa and merged_into.merge_id == merged.merge_id
    # The merged customer's own stream is untouched but for the bookkeeping event.
    assert w.state(tg).identities.keys() == {("telegram", "777"), ("phone", "+16505550004")}
    v = w.view(tg)
    assert v.customer_id == wa
    assert {(i.link.channel, i.customer_id) for i in v.identities} == {
        ("whatsapp", wa),
        ("telegram", tg),
        ("phone", tg),
    }
    assert v.display_name == "Ana"
    # The same evidence again (a redelivery, a replay) changes nothing.
    assert w.observe(dataclasses.replace(ev)) == []


def test_changed_whatsapp_number_links_the_new_number_and_joins_its_customer() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550005", name="Bo"))
    old = w.owner("t1", "whatsapp", "16505550005")
    # The new number had written before, as a different customer (newer).
    w.observe(msg("447911000005", at=T0 + timedelta(days=1)))
    new = w.owner("t1", "whatsapp", "447911000005")
    events = w.observe(
        evidence(
            ("whatsapp", "16505550005"),
            "changed_number",
            phone="+447911000005",
            at=T0 + timedelta(days=2),
        )
    )
    assert kinds(events) == ["ProfilesMerged", "CustomerMergedInto"]  # already linked elsewhere
    assert events[0].payload.survivor_customer_id == old
    assert events[0].payload.merged_customer_id == new
    assert events[0].payload.evidence.rule == domain.RULE_CHANGED_NUMBER
    # A changed number nobody had yet is linked to the subject.
    events = w.observe(
        evidence(
            ("whatsapp", "16505550005"),
            "changed_number",
            phone="+34600000005",
            at=T0 + timedelta(days=3),
        )
    )
    assert kinds(events) == ["IdentityLinked"]
    assert events[0].payload.identity.address == "34600000005"
    assert w.owner("t1", "whatsapp", "34600000005") == old


def test_verified_email_joins_web_chat_visitors() -> None:
    w = InMemoryProfiles()
    w.observe(msg("visitor-1", channel="webchat"))
    w.observe(msg("visitor-2", channel="webchat", at=T0 + timedelta(days=1)))
    w.observe(evidence(("webchat", "visitor-1"), "verified_email", email="Ana@Example.com"))
    assert len(w.roots()) == 2
    events = w.observe(
        evidence(
            ("webchat", "visitor-2"),
            "verified_email",
            email=" ana@example.COM",
            at=T0 + timedelta(days=1),
        )
    )
    assert kinds(events) == ["ProfilesMerged", "CustomerMergedInto"]
    assert events[0].payload.evidence.rule == domain.RULE_VERIFIED_EMAIL
    [root] = w.roots()
    assert root == w.owner("t1", "webchat", "visitor-1")
    assert w.owner("t1", "email", "ana@example.com") == root


def test_evidence_about_an_unknown_subject_creates_it_and_bad_values_are_ignored() -> None:
    w = InMemoryProfiles()
    events = w.observe(evidence(("telegram", "900"), "shared_phone", phone="+16505550006"))
    assert kinds(events) == ["CustomerCreated", "IdentityLinked", "IdentityLinked"]
    assert w.observe(evidence(("telegram", "901"), "shared_phone", phone="n/a")) == []
    assert w.observe(evidence(("telegram", "901"), "verified_email", email="nope")) == []
    assert w.observe(evidence(("telegram", "901"), "favourite_colour", phone="+16505550006")) == []
    assert w.owner("t1", "telegram", "901") is None


def test_unmerged_customers_are_never_merged_again_by_the_rules() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550007", name="Dad"))
    w.observe(msg("888", channel="telegram", name="Son", at=T0 + timedelta(hours=1)))
    ev = evidence(
        ("telegram", "888"), "shared_phone", phone="+16505550007", at=T0 + timedelta(hours=2)
    )
    w.observe(ev)
    [merge] = [e.payload for e in w.log if isinstance(e.payload, pe.ProfilesMerged)]
    cmd(w, "unmerge_customers", "t1", merge.merge_id, actor="agent", reason="family phone")
    assert len(w.roots()) == 2
    # Replayed evidence, new evidence, a new identity with the same phone: no merge.
    assert w.observe(dataclasses.replace(ev)) == []
    w.observe(
        evidence(
            ("telegram", "888"), "shared_phone", phone="+16505550007", at=T0 + timedelta(hours=3)
        )
    )
    w.observe(msg("+16505550007", channel="sms", at=T0 + timedelta(hours=4)))
    assert len(w.roots()) == 2
    assert sum(isinstance(e.payload, pe.ProfilesMerged) for e in w.log) == 1
    # A person may still merge them.
    merge_id = cmd(
        w,
        "merge_customers",
        "t1",
        merge.survivor_customer_id,
        merge.merged_customer_id,
        actor="agent",
        reason="same after all",
    )
    assert merge_id != merge.merge_id and len(w.roots()) == 1


def test_unlinked_identity_starts_a_new_customer_and_is_not_linked_back() -> None:
    w = InMemoryProfiles()
    first = msg("16505550008", name="Shared")
    w.observe(first)
    w.observe(msg("+16505550008", channel="sms", at=T0 + timedelta(minutes=1)))
    original = w.owner("t1", "whatsapp", "16505550008")
    cmd(
        w,
        "unlink_identity",
        "t1",
        original,
        "whatsapp",
        "16505550008",
        actor="agent",
        note="not her number",
    )
    assert w.owner("t1", "whatsapp", "16505550008") is None
    assert ("whatsapp", "16505550008") in w.state(original).detached
    # A replay of the old message (older than the unlink) decides nothing.
    assert w.observe(dataclasses.replace(first)) == []
    # A new message: a new customer, not linked back by the shared phone.
    later = msg("16505550008", name="Other", at=T0 + timedelta(days=1))
    events = w.observe(later)
    assert kinds(events)[:2] == ["CustomerCreated", "IdentityLinked"]
    assert events[0].aggregate_id == domain.customer_id_for(
        "t1", "whatsapp", "16505550008", later.source_event_id
    )
    assert len(w.roots()) == 2


# ------------------------------------------------------------------------------- merges


def test_merge_then_unmerge_restores_both_customers_exactly() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550010", name="Ana", text="hi"))
    w.observe(msg("16505550011", name="Bea", at=T0 + timedelta(minutes=1)))
    a = w.owner("t1", "whatsapp", "16505550010")
    b = w.owner("t1", "whatsapp", "16505550011")
    cmd(
        w,
        "update_customer",
        "t1",
        a,
        set_attributes={"tier": "gold", "city": "SF"},
        add_tags=["vip"],
        locale="es",
        actor="crm",
    )
    cmd(
        w,
        "update_customer",
        "t1",
        b,
        set_attributes={"tier": "silver", "shoe": "38"},
        add_tags=["new"],
        actor="crm",
    )
    cmd(w, "set_consent", "t1", b, "whatsapp", "marketing", True, proof="form 12", actor="crm")
    before = {a: comparable(w.view(a)), b: comparable(w.view(b))}
    states_before = {a: w.state(a), b: w.state(b)}

    merge_id = cmd(w, "merge_customers", "t1", a, b, actor="agent-1", reason="same person")
    merged = w.view(b)
    assert merged.customer_id == a
    assert merged.attributes == {"tier": "gold", "city": "SF", "shoe": "38"}  # survivor wins
    assert merged.tags == ("new", "vip")
    assert merged.merged == ((b, merge_id),)
    assert [c.purpose for c in merged.consents] == ["marketing"]
    assert w.state(a).merges[merge_id].reason == "same person"
    # Retrying the same request answers the same merge and appends nothing.
    n = len(w.log)
    assert cmd(w, "merge_customers", "t1", a, b, actor="agent-1", reason="x") == merge_id
    assert len(w.log) == n

    survivor, restored = cmd(
        w, "unmerge_customers", "t1", merge_id, actor="agent-2", reason="mistake"
    )
    assert (survivor, restored) == (a, b)
    assert {a: comparable(w.view(a)), b: comparable(w.view(b))} == before
    # The streams only grew by the bookkeeping events; the customers' own data is identical.
    for cid in (a, b):
        now, then = w.state(cid), states_before[cid]
        assert (
            dataclasses.replace(
                now, version=then.version, merges=then.merges, separated=then.separated
            )
            == then
        )
    assert w.state(a).merges[merge_id].unmerged_at is not None
    with pytest.raises(FailedPrecondition):
        cmd(w, "unmerge_customers", "t1", merge_id, actor="x", reason="")
    assert w.refold() == w.profiles.states


def test_merge_validation_and_tenancy() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550020"))
    w.observe(msg("16505550021"))
    w.observe(msg("16505550022", tenant="other"))
    a, b = w.owner("t1", "whatsapp", "16505550020"), w.owner("t1", "whatsapp", "16505550021")
    stranger = w.owner("other", "whatsapp", "16505550022")
    n = len(w.log)
    with pytest.raises(InvalidArgument) as err:
        cmd(w, "merge_customers", "t1", a, a, actor="x", reason="")
    assert err.value.field == "merged_customer_id"
    with pytest.raises(NotFound):
        cmd(w, "merge_customers", "t1", a, stranger, actor="x", reason="")
    with pytest.raises(NotFound):
        cmd(w, "merge_customers", "t1", stranger, a, actor="x", reason="")
    with pytest.raises(NotFound):
        cmd(w, "merge_customers", "t1", a, "nope", actor="x", reason="")
    assert len(w.log) == n
    cmd(w, "merge_customers", "t1", a, b, actor="x", reason="")
    w.observe(msg("16505550023"))
    c = w.owner("t1", "whatsapp", "16505550023")
    with pytest.raises(FailedPrecondition):
        cmd(w, "merge_customers", "t1", c, b, actor="x", reason="")  # b is merged into a
    with pytest.raises(FailedPrecondition):
        cmd(w, "merge_customers", "t1", b, c, actor="x", reason="")  # b is not a survivor
    with pytest.raises(NotFound):
        cmd(w, "unmerge_customers", "t1", "no-such-merge", actor="x", reason="")
    with pytest.raises(FailedPrecondition):
        cmd(w, "update_customer", "t1", b, locale="en", actor="x")


def test_nested_merges_and_unmerge_of_the_inner_one() -> None:
    w = InMemoryProfiles()
    for i in range(3):
        w.observe(msg(f"1650555003{i}", at=T0 + timedelta(minutes=i)))
    a, b, c = (w.owner("t1", "whatsapp", f"1650555003{i}") for i in range(3))
    m1 = cmd(w, "merge_customers", "t1", b, c, actor="x", reason="")
    m2 = cmd(w, "merge_customers", "t1", a, b, actor="x", reason="")
    assert w.root(c) == a
    assert {cid for cid, _ in w.view(c).merged} == {b, c}
    assert len(w.view(a).identities) == 3
    cmd(w, "unmerge_customers", "t1", m1, actor="x", reason="")
    assert w.root(c) == c and w.root(b) == a
    assert w.view(a).merged == ((b, m2),)


# ------------------------------------------------------------------------------- consent


def test_stop_then_start_on_sms_flips_marketing_consent_with_evidence() -> None:
    w = InMemoryProfiles()
    w.observe(msg("+16505550040", channel="twilio"))
    cid = w.owner("t1", "twilio", "+16505550040")
    assert view.can_contact(w.view(cid), "sms", "marketing").allowed is False
    assert view.can_contact(w.view(cid), "sms", "transactional").allowed is True
    stop = msg("+16505550040", channel="twilio", text=" Stop. ", at=T0 + timedelta(minutes=1))
    events = w.observe(stop)
    consents = [e.payload for e in events if isinstance(e.payload, pe.ConsentChanged)]
    assert [(c.channel, c.purpose, c.granted) for c in consents] == [
        ("sms", "marketing", False),
        ("sms", "transactional", False),
    ]
    assert consents[0].source == "keyword"
    assert consents[0].evidence.rule == domain.RULE_KEYWORD
    assert consents[0].evidence.source_event_id == stop.source_event_id
    assert consents[0].evidence.note == "Stop."
    assert (consents[0].identity.channel, consents[0].identity.address) == (
        "twilio",
        "+16505550040",
    )
    answer = view.can_contact(w.view(cid), "twilio", "transactional")
    assert not answer.allowed and "opted out" in answer.reason and "Stop." in answer.reason
    # STOP again changes nothing; START (in Spanish) opts back in.
    assert not [
        e
        for e in w.observe(dataclasses.replace(stop, source_event_id=src()))
        if isinstance(e.payload, pe.ConsentChanged)
    ]
    start = msg("+16505550040", channel="twilio", text="COMENZAR", at=T0 + timedelta(minutes=2))
    w.observe(start)
    answer = view.can_contact(w.view(cid), "sms", "marketing")
    assert answer.allowed and answer.consent is not None
    assert answer.consent.record.source_event_id == start.source_event_id
    # The old STOP replayed (older than the entry in force) never flips it back.
    assert not [
        e for e in w.observe(dataclasses.replace(stop)) if isinstance(e.payload, pe.ConsentChanged)
    ]
    assert view.can_contact(w.view(cid), "sms", "marketing").allowed


def test_whatsapp_stop_withdraws_marketing_only_and_conversation_is_not_a_keyword() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550041"))
    cid = w.owner("t1", "whatsapp", "16505550041")
    w.observe(msg("16505550041", text="please don't stop", at=T0 + timedelta(seconds=1)))
    w.observe(msg("16505550041", text="cancel", at=T0 + timedelta(seconds=2)))  # an order
    assert w.view(cid).consents == ()
    w.observe(msg("16505550041", text="إلغاء الاشتراك", at=T0 + timedelta(seconds=3)))
    assert [(c.purpose, c.record.granted) for c in w.view(cid).consents] == [("marketing", False)]
    assert view.can_contact(w.view(cid), "whatsapp", "transactional").allowed


def test_consent_is_effective_across_a_merged_group() -> None:
    w = InMemoryProfiles()
    w.observe(msg("+16505550042", channel="sms"))
    w.observe(msg("+16505550043", channel="sms"))
    a, b = w.owner("t1", "sms", "+16505550042"), w.owner("t1", "sms", "+16505550043")
    w.observe(msg("+16505550043", channel="sms", text="STOP", at=T0 + timedelta(minutes=1)))
    cmd(
        w,
        "set_consent",
        "t1",
        a,
        "sms",
        "marketing",
        True,
        proof="signup form",
        actor="crm",
        at=T0 + timedelta(minutes=2),
    )
    cmd(w, "merge_customers", "t1", a, b, actor="x", reason="", at=T0 + timedelta(minutes=3))
    assert view.can_contact(w.view(b), "sms", "marketing").allowed  # latest: a's opt-in
    # b says STOP again: its own entry already says so, but the group's does not -> recorded.
    events = w.observe(
        msg("+16505550043", channel="sms", text="stop", at=T0 + timedelta(minutes=4))
    )
    assert any(isinstance(e.payload, pe.ConsentChanged) and e.aggregate_id == b for e in events)
    assert not view.can_contact(w.view(a), "sms", "marketing").allowed


def test_unfollow_and_follow_change_both_purposes() -> None:
    w = InMemoryProfiles()
    w.observe(msg("U123", channel="line"))
    cid = w.owner("t1", "line", "U123")
    w.observe(subscription(("line", "U123"), False, at=T0 + timedelta(minutes=1)))
    assert not view.can_contact(w.view(cid), "line", "transactional").allowed
    w.observe(subscription(("line", "U123"), True, at=T0 + timedelta(minutes=2), reason="follow"))
    assert view.can_contact(w.view(cid), "line", "marketing").allowed
    # An unfollow from someone never seen creates the customer to record it.
    w.observe(subscription(("wechat", "oABC"), False))
    assert w.owner("t1", "wechat", "oABC") is not None


def test_set_consent_needs_proof_and_a_known_purpose() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550044"))
    cid = w.owner("t1", "whatsapp", "16505550044")
    for kwargs, field in [
        ({"purpose": "spam", "proof": "x"}, "purpose"),
        ({"purpose": "marketing", "proof": "  "}, "proof"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            cmd(
                w,
                "set_consent",
                "t1",
                cid,
                "whatsapp",
                kwargs["purpose"],
                True,
                proof=kwargs["proof"],
                actor="x",
            )
        assert err.value.field == field
    assert view.can_contact(w.view(cid), "sms", "transactional").reason.startswith(
        "the customer has no sms identity"
    )


# ------------------------------------------------------------------------------- profile data


def test_update_customer_checks_the_expected_version_and_validates() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550050"))
    cid = w.owner("t1", "whatsapp", "16505550050")
    version = w.state(cid).version
    with pytest.raises(ConcurrencyError):
        cmd(w, "update_customer", "t1", cid, expected_version=version - 1, locale="en", actor="x")
    assert (
        cmd(
            w,
            "update_customer",
            "t1",
            cid,
            expected_version=version,
            locale="pt-BR",
            set_attributes={"a": "1"},
            add_tags=["x"],
            actor="x",
        )
        is True
    )
    assert cmd(w, "update_customer", "t1", cid, locale="pt-BR", actor="x") is False  # no-op
    for kwargs, field in [
        ({"locale": "not a locale!"}, "locale"),
        ({"set_attributes": {"": "v"}}, "set_attributes"),
        ({"add_tags": ["x"], "remove_tags": ["x"]}, "remove_tags"),
        ({"add_tags": [""]}, "add_tags"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            cmd(w, "update_customer", "t1", cid, actor="x", **kwargs)
        assert err.value.field == field
    cmd(w, "update_customer", "t1", cid, remove_attributes=["a"], remove_tags=["x"], actor="x")
    state = w.state(cid)
    assert (state.attributes, state.tags, state.locale) == ({}, (), "pt-BR")


def test_location_and_purchases() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550060", location=rules.Location(37.77, -122.41, "Home", "SF")))
    cid = w.owner("t1", "whatsapp", "16505550060")
    w.observe(
        msg("16505550060", at=T0 - timedelta(hours=1), location=rules.Location(1.0, 2.0))
    )  # older: ignored
    assert w.view(cid).location is not None and w.view(cid).location.name == "Home"
    order = rules.PurchaseObservation("t1", cid, "o1", "order_placed", "", 0, T0, src())
    paid = rules.PurchaseObservation("t1", cid, "o1", "payment_captured", "eur", 1250, T0, src())
    for p in (order, paid, order, paid):  # redelivered: counted once
        w.observe(p)
    w.observe(rules.PurchaseObservation("other", cid, "o2", "order_placed", "", 0, T0, src()))
    v = w.view(cid)
    assert (v.order_count, v.lifetime_value) == (1, (("EUR", 1250),))


def test_link_identity_by_hand_then_phone_rule_joins() -> None:
    w = InMemoryProfiles()
    w.observe(msg("16505550070"))
    w.observe(msg("555", channel="viber"))
    w.observe(msg("16505550071"))
    a = w.owner("t1", "whatsapp", "16505550070")
    viber = w.owner("t1", "viber", "555")
    with pytest.raises(FailedPrecondition):
        cmd(w, "link_identity", "t1", a, "viber", "555", actor="agent", note="")
    with pytest.raises(InvalidArgument) as err:
        cmd(w, "link_identity", "t1", a, "phone", "call me", actor="agent", note="")
    assert err.value.field == "address"
    cmd(
        w,
        "link_identity",
        "t1",
        viber,
        "phone",
        "+1 650 555 0070",
        actor="agent",
        note="told us on a call",
    )
    assert w.root(viber) == a  # the phone joined them; a is older
    [merge] = w.state(a).merges.values()
    assert merge.rule == domain.RULE_SAME_PHONE
    # Linking what is already the group's is a no-op.
    n = len(w.log)
    cmd(w, "link_identity", "t1", a, "phone", "+16505550070", actor="agent", note="")
    assert len(w.log) == n
