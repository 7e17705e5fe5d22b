"""WhatsApp `system` messages (the customer changed their number) -> IdentityEvidenceObserved."""

from __future__ import annotations

from gateway_testkit import TS, body_of, change, payload

from parlay.gateway.v1 import gateway_events_pb2 as pb
from parlay_gateway.channels.whatsapp import normalize_payload
from parlay_kit.envelope import deterministic_event_id


def _system(system: dict) -> bytes:
    message = {
        "from": "16505551234",
        "id": "wamid.SYS1",
        "timestamp": TS,
        "type": "system",
        "system": system,
    }
    return body_of(payload([change(messages=[message])]))


def test_changed_number_is_identity_evidence() -> None:
    body = _system(
        {
            "body": "User Kerry changed from 16505551234 to 16505559999",
            "wa_id": "16505559999",
            "type": "user_changed_number",
        }
    )
    received, evidence = normalize_payload(
        body, account_id="acc", tenant_id="t", webhook_event_id="w"
    )
    assert isinstance(received.payload, pb.MessageReceived)
    assert received.payload.content.unsupported.provider_type == "system"
    event = evidence.payload
    assert isinstance(event, pb.IdentityEvidenceObserved)
    assert (event.evidence_kind, event.subject.address, event.new_address, event.phone) == (
        "changed_number",
        "16505551234",
        "16505559999",
        "16505559999",
    )
    assert event.provider_event_id == "wamid.SYS1"
    assert evidence.aggregate_id == "acc:16505551234"
    assert evidence.event_id == deterministic_event_id(
        "whatsapp", "acc", "wamid.SYS1", "changed_number"
    )
    assert evidence.occurred_at.timestamp() == int(TS)


def test_older_field_names_and_other_system_types() -> None:
    old = _system({"body": "changed", "new_wa_id": "4915100000", "type": "customer_changed_number"})
    events = normalize_payload(old, account_id="acc", tenant_id="t", webhook_event_id="w")
    assert events[1].payload.new_address == "4915100000"
    identity = _system(
        {"body": "security code changed", "identity": "abc", "type": "customer_identity_changed"}
    )
    assert (
        len(normalize_payload(identity, account_id="acc", tenant_id="t", webhook_event_id="w")) == 1
    )
