"""Pure profile rules: identity normalization, first contact, names, last seen, the fold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from parlay.profile.v1 import profile_events_pb2 as pe
from parlay_profile import domain, rules

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def obs(
    address: str = "16505551234", *, at: datetime = T0, name: str = "Ana", **kw
) -> rules.Observation:
    return rules.observation(
        tenant_id=kw.pop("tenant_id", "t1"),
        channel=kw.pop("channel", "whatsapp"),
        address=address,
        channel_account_id=kw.pop("channel_account_id", "acc-1"),
        display_name=name,
        vouched_phone=kw.pop("vouched_phone", ""),
        occurred_at=at,
        source_event_id=kw.pop("source_event_id", f"src-{address}-{at.isoformat()}"),
        text=kw.pop("text", ""),
    )


class World:
    """A whole tenant in memory: what the projector does, minus Postgres."""

    def __init__(self, **kw) -> None:
        self.resolver = rules.Resolver(rules.Profiles(), **kw)

    def observe(self, o) -> list[domain.ProfileEvent]:
        mark = len(self.resolver.events)
        self.resolver.observe(o)
        return self.resolver.events[mark:]

    def state(self, customer_id: str) -> domain.CustomerState:
        return self.resolver.profiles.require(customer_id)

    def owner(self, o: rules.Observation) -> domain.CustomerState:
        cid = self.resolver.profiles.owner(o.tenant_id, *o.key)
        assert cid is not None
        return self.state(cid)


def kinds(events: list[domain.ProfileEvent]) -> list[str]:
    return [type(e.payload).__name__ for e in events]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("16505551234", "+16505551234"),
        ("+1 (650) 555-1234", "+16505551234"),
        ("1-650-555-1234", "+16505551234"),
        ("447911123456", "+447911123456"),
        ("+44 7911 123456", "+447911123456"),
        # WhatsApp's Mexican mobiles carry the old "1": the same number.
        ("5215512345678", "+525512345678"),
        ("+52 55 1234 5678", "+525512345678"),
        ("", ""),
        ("not a phone", ""),
        ("12", ""),
        ("1" * 20, ""),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert domain.normalize_phone(raw) == expected


def test_normalize_email_and_channels() -> None:
    assert domain.normalize_email("  Ana@Example.COM ") == "ana@example.com"
    assert domain.normalize_email("not-an-email") == ""
    assert domain.contact_channel(" Twilio ") == "sms"
    assert domain.contact_channel("WhatsApp") == "whatsapp"


def test_identity_phone_by_channel() -> None:
    assert domain.identity_phone("WhatsApp", "16505551234") == "+16505551234"
    assert domain.identity_phone("sms", "+16505551234") == "+16505551234"
    assert domain.identity_phone("twilio", "+1 650 555 1234") == "+16505551234"
    assert domain.identity_phone("telegram", "987654321") == ""
    assert domain.identity_phone("telegram", "987654321", "+44 7911 123456") == "+447911123456"


def test_customer_id_is_deterministic_per_tenant_and_identity() -> None:
    a = domain.customer_id_for("t1", "whatsapp", "16505551234")
    assert a == domain.customer_id_for("t1", " WhatsApp ", " 16505551234 ")
    assert a != domain.customer_id_for("t2", "whatsapp", "16505551234")
    assert a != domain.customer_id_for("t1", "sms", "16505551234")
    assert a != domain.customer_id_for("t1", "whatsapp", "16505551234", "salt")


def test_first_contact_creates_links_and_sees() -> None:
    w = World()
    o = obs(vouched_phone="16505551234")
    events = w.observe(o)
    assert kinds(events) == ["CustomerCreated", "IdentityLinked", "CustomerSeen"]
    assert [e.version for e in events] == [1, 2, 3]
    cid = domain.customer_id_for("t1", "whatsapp", "16505551234")
    assert {e.aggregate_id for e in events} == {cid}
    assert len({e.event_id for e in events}) == 3
    # Same cause, same ids: reprocessing cannot duplicate.
    assert [e.event_id for e in World().observe(o)] == [e.event_id for e in events]
    created, linked, seen = (e.payload for e in events)
    assert created.display_name == "Ana"
    assert created.display_name_source == "whatsapp:16505551234"
    assert linked.identity == pe.Identity(
        channel="whatsapp", address="16505551234", normalized_phone="+16505551234"
    )
    assert linked.evidence.rule == domain.RULE_FIRST_CONTACT
    assert linked.evidence.source_event_id == o.source_event_id
    assert linked.evidence.actor == domain.SYSTEM_ACTOR
    assert seen.channel == "whatsapp" and seen.channel_account_id == "acc-1"

    state = w.state(cid)
    assert state == domain.fold(None, events)
    assert state.version == 3
    assert state.display_name == "Ana"
    assert set(state.identities) == {("whatsapp", "16505551234")}
    assert state.seen["whatsapp"].last_seen_at == T0
    assert state.created_at == state.updated_at == T0
    # Reprocessing the same message decides nothing.
    assert w.observe(o) == []


def test_known_identity_same_name_within_resolution_emits_nothing() -> None:
    w = World()
    w.observe(obs())
    assert w.observe(obs(at=T0 + timedelta(seconds=30))) == []


def test_last_seen_advances_at_resolution() -> None:
    w = World()
    w.observe(obs())
    later = w.observe(obs(at=T0 + timedelta(minutes=2)))
    assert kinds(later) == ["CustomerSeen"]
    assert later[0].version == 4
    assert w.owner(obs()).seen["whatsapp"].last_seen_at == T0 + timedelta(minutes=2)
    # An older message (replay, out of order) never moves it back nor emits.
    assert w.observe(obs(at=T0 + timedelta(minutes=1))) == []
    # A coarser resolution is configurable.
    coarse = World(seen_resolution=timedelta(hours=1))
    coarse.observe(obs())
    assert coarse.observe(obs(at=T0 + timedelta(minutes=10))) == []


def test_display_name_changes_only_forward_in_time() -> None:
    w = World()
    w.observe(obs(name="Ana"))
    renamed = w.observe(obs(name="Ana María", at=T0 + timedelta(seconds=10)))
    assert kinds(renamed) == ["DisplayNameChanged"]
    assert w.owner(obs()).display_name == "Ana María"
    # An older message with the old name does not flip it back; an empty name never clears it.
    assert w.observe(obs(name="Ana", at=T0 + timedelta(seconds=5))) == []
    assert w.observe(obs(name="", at=T0 + timedelta(seconds=20))) == []


def test_first_contact_without_name_then_name_arrives() -> None:
    w = World()
    w.observe(obs(name=""))
    state = w.owner(obs())
    assert state.display_name == "" and state.display_name_at is None
    assert kinds(w.observe(obs(name="Bo", at=T0 - timedelta(seconds=1)))) == ["DisplayNameChanged"]


def test_names_do_not_flip_flop_between_channels_and_manual_names_stick() -> None:
    w = World()
    w.observe(obs("16505551234", name="Ana"))
    # The same person on SMS (no name) and Viber with a nickname: the WhatsApp name stays.
    w.observe(obs("+16505551234", channel="sms", name="", at=T0 + timedelta(minutes=1)))
    w.observe(
        obs(
            "+16505551234",
            channel="viber",
            name="ana_88",
            vouched_phone="+16505551234",
            at=T0 + timedelta(minutes=2),
        )
    )
    ana = w.owner(obs())
    assert len(ana.identities) == 3
    assert ana.display_name == "Ana"
    # A person sets the name: no channel replaces it, not even the one that set it first.
    w.resolver.update_customer(
        "t1",
        ana.customer_id,
        display_name="Ana Pérez",
        actor="agent-7",
        at=T0 + timedelta(minutes=3),
        command_id="cmd-1",
    )
    assert "DisplayNameChanged" not in kinds(
        w.observe(obs(name="Ana P", at=T0 + timedelta(minutes=10)))
    )
    assert w.owner(obs()).display_name == "Ana Pérez"
    assert w.owner(obs()).display_name_source == domain.MANUAL_NAME_SOURCE


def test_observation_needs_an_address() -> None:
    with pytest.raises(ValueError):
        World().observe(obs(address="  "))


def test_apply_rejects_impossible_streams_and_skips_unknown_types() -> None:
    created = World().observe(obs())[0]
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
    w = World()
    events: list[domain.ProfileEvent] = []
    for i, (name, minutes) in enumerate([("A", 0), ("A", 0.5), ("B", 3), ("B", 7), ("C", 7.2)]):
        events += w.observe(
            obs(name=name, at=T0 + timedelta(minutes=minutes), source_event_id=f"e{i}")
        )
    state = w.owner(obs())
    assert domain.fold(None, events) == state
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert state.display_name == "C"


def test_fast_constructors_build_complete_states() -> None:
    """make_state / evolve bypass the dataclass __init__: every field must still be there."""
    import dataclasses

    w = World()
    w.observe(obs())
    state = w.owner(obs())
    names = {f.name for f in dataclasses.fields(domain.CustomerState)}
    assert set(vars(state)) == names
    assert set(vars(domain.evolve(state, version=9))) == names
    assert domain.evolve(state, version=9) == dataclasses.replace(state, version=9)
