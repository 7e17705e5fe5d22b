"""Pure profile rules: identity normalization, first contact, names, last seen, the fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_profile import domain

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def obs(
    address: str = "16505551234", *, at: datetime = T0, name: str = "Ana", **kw
) -> domain.Observation:
    return domain.observation(
        tenant_id=kw.pop("tenant_id", "t1"),
        channel=kw.pop("channel", "whatsapp"),
        address=address,
        channel_account_id=kw.pop("channel_account_id", "acc-1"),
        display_name=name,
        vouched_phone=kw.pop("vouched_phone", ""),
        occurred_at=at,
        source_event_id=kw.pop("source_event_id", f"src-{address}-{at.isoformat()}"),
    )


def first_contact(o: domain.Observation) -> domain.CustomerState:
    state = domain.fold(None, domain.decide_message(o, None).events)
    assert state is not None
    return state


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("16505551234", "+16505551234"),
        ("+1 (650) 555-1234", "+16505551234"),
        ("447911123456", "+447911123456"),
        ("", ""),
        ("not a phone", ""),
        ("12", ""),
        ("1" * 20, ""),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert domain.normalize_phone(raw) == expected


def test_identity_phone_by_channel() -> None:
    assert domain.identity_phone("WhatsApp", "16505551234") == "+16505551234"
    assert domain.identity_phone("sms", "+16505551234") == "+16505551234"
    assert domain.identity_phone("telegram", "987654321") == ""
    assert domain.identity_phone("telegram", "987654321", "+44 7911 123456") == "+447911123456"


def test_customer_id_is_deterministic_per_tenant_and_identity() -> None:
    a = domain.customer_id_for("t1", "whatsapp", "16505551234")
    assert a == domain.customer_id_for("t1", " WhatsApp ", " 16505551234 ")
    assert a != domain.customer_id_for("t2", "whatsapp", "16505551234")
    assert a != domain.customer_id_for("t1", "sms", "16505551234")


def test_first_contact_creates_links_and_sees() -> None:
    o = obs(vouched_phone="16505551234")
    decision = domain.decide_message(o, None)
    assert decision.kinds == ("CustomerCreated", "IdentityLinked", "CustomerSeen")
    assert [e.version for e in decision.events] == [1, 2, 3]
    assert decision.customer_id == domain.customer_id_for("t1", "whatsapp", "16505551234")
    assert len({e.event_id for e in decision.events}) == 3
    # Same cause, same ids: reprocessing cannot duplicate.
    assert [e.event_id for e in domain.decide_message(o, None).events] == [
        e.event_id for e in decision.events
    ]
    created, linked, seen = (e.payload for e in decision.events)
    assert created.display_name == "Ana"
    assert linked.identity == pe.Identity(
        channel="whatsapp", address="16505551234", normalized_phone="+16505551234"
    )
    assert linked.evidence.rule == domain.RULE_FIRST_CONTACT
    assert linked.evidence.source_event_id == o.source_event_id
    assert linked.evidence.actor == domain.SYSTEM_ACTOR
    assert seen.channel == "whatsapp" and seen.channel_account_id == "acc-1"

    state = domain.fold(None, decision.events)
    assert state is not None
    assert state.version == 3
    assert state.display_name == "Ana"
    assert set(state.identities) == {("whatsapp", "16505551234")}
    assert state.seen["whatsapp"].last_seen_at == T0
    assert state.created_at == state.updated_at == T0


def test_known_identity_same_name_within_resolution_emits_nothing() -> None:
    state = first_contact(obs())
    again = domain.decide_message(obs(at=T0 + timedelta(seconds=30)), state)
    assert again.events == ()
    assert again.customer_id == state.customer_id


def test_last_seen_advances_at_resolution() -> None:
    state = first_contact(obs())
    later = domain.decide_message(obs(at=T0 + timedelta(minutes=2)), state)
    assert later.kinds == ("CustomerSeen",)
    assert later.events[0].version == state.version + 1
    state = domain.fold(state, later.events)
    assert state.seen["whatsapp"].last_seen_at == T0 + timedelta(minutes=2)
    # An older message (replay, out of order) never moves it back nor emits.
    assert domain.decide_message(obs(at=T0 + timedelta(minutes=1)), state).events == ()
    # A coarser resolution is configurable.
    assert (
        domain.decide_message(
            obs(at=T0 + timedelta(minutes=10)), state, seen_resolution=timedelta(hours=1)
        ).events
        == ()
    )


def test_display_name_changes_only_forward_in_time() -> None:
    state = first_contact(obs(name="Ana"))
    renamed = domain.decide_message(obs(name="Ana María", at=T0 + timedelta(seconds=10)), state)
    assert renamed.kinds == ("DisplayNameChanged",)
    state = domain.fold(state, renamed.events)
    assert state.display_name == "Ana María"
    # An older message with the old name does not flip it back; an empty name never clears it.
    assert domain.decide_message(obs(name="Ana", at=T0 + timedelta(seconds=5)), state).events == ()
    assert domain.decide_message(obs(name="", at=T0 + timedelta(seconds=20)), state).events == ()


def test_first_contact_without_name_then_name_arrives() -> None:
    state = first_contact(obs(name=""))
    assert state.display_name == "" and state.display_name_at is None
    decision = domain.decide_message(obs(name="Bo", at=T0 - timedelta(seconds=1)), state)
    assert decision.kinds == ("DisplayNameChanged",)


def test_unknown_identity_of_existing_customer_only_links() -> None:
    """The customer the identity would create exists (e.g. after an unlink): link, no create."""
    state = first_contact(obs())
    relink = domain.decide_message(
        obs(at=T0 + timedelta(seconds=5), source_event_id="again"), None, state
    )
    assert relink.kinds == ("IdentityLinked",)
    assert relink.events[0].version == state.version + 1


def test_observation_needs_an_address() -> None:
    with pytest.raises(ValueError):
        domain.decide_message(obs(address="  "), None)


def test_apply_rejects_impossible_streams_and_skips_unknown_types() -> None:
    created = domain.decide_message(obs(), None).events[0]
    state = domain.apply(None, created)
    with pytest.raises(domain.InvalidTransition):
        domain.apply(state, created)
    with pytest.raises(domain.InvalidTransition):
        domain.apply(
            None,
            domain.ProfileEvent("t1", "c1", 1, T0, pe.DisplayNameChanged(customer_id="c1")),
        )
    future = domain.ProfileEvent("t1", state.customer_id, 2, T0, pe.Evidence(rule="x"))
    assert domain.apply(state, future).version == 2


def test_fold_of_the_stream_is_the_state() -> None:
    """What the projection keeps inline equals a fold over the emitted events (rebuild)."""
    events: list[domain.ProfileEvent] = []
    state = None
    for i, (name, minutes) in enumerate([("A", 0), ("A", 0.5), ("B", 3), ("B", 7), ("C", 7.2)]):
        o = obs(name=name, at=T0 + timedelta(minutes=minutes), source_event_id=f"e{i}")
        decision = domain.decide_message(o, state)
        events += decision.events
        state = domain.fold(state, decision.events)
    assert domain.fold(None, events) == state
    assert state is not None
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert state.display_name == "C"
