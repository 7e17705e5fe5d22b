"""WhatsApp Cloud API webhook payloads for the load generators: Meta's documented shape, one text
message each, signed like Meta signs them (X-Hub-Signature-256 = HMAC-SHA256 of the raw body
keyed with the app secret), and turned into complete HTTP/1.1 request bytes ahead of time so the
timed part of a run spends nothing on JSON or HMAC.

Pure functions; deterministic for a given seed, so a schedule can be rebuilt anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

APP_SECRET = "bench-app-secret-5f1d3c0b9a"
VERIFY_TOKEN = "bench-verify-token"
ACCESS_TOKEN = "bench-access-token"
PHONE_NUMBER_ID = "109990000000001"
DISPLAY_PHONE = "15550009999"
WABA_ID = "102290129340398"
TIMESTAMP = "1717430400"  # the provider time in the payload; not used for measuring
USER_AGENT = "facebookexternalua"

_FIRST = ("Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gita", "Hugo", "Ines", "Jun", "Kofi", "Lea")
_LAST = ("Silva", "Okafor", "Tanaka", "Novak", "Haddad", "Kim", "Rossi", "Diaz", "Berg", "Nair")


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound text message: who sends it, its provider id and, for open-loop runs, when."""

    seq: int
    wamid: str
    wa_id: str
    name: str
    text: str
    #: Seconds after the run's t0 at which it is to be sent (open loop); 0 for closed loop.
    offset: float = 0.0
    #: True if this customer already wrote earlier in the run (repeat customer).
    repeat: bool = False


def wamid_for(run_id: str, seq: int) -> str:
    # Real wamids are base64 of a protobuf; any unique opaque string is accepted.
    return f"wamid.BENCH{run_id.upper()}{seq:09d}"


def display_name(n: int) -> str:
    return f"{_FIRST[n % len(_FIRST)]} {_LAST[(n // len(_FIRST)) % len(_LAST)]} {n}"


def body_for(message: Message, *, phone_number_id: str = PHONE_NUMBER_ID) -> bytes:
    """The webhook body Meta POSTs for one inbound text message."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": DISPLAY_PHONE,
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [
                                {"profile": {"name": message.name}, "wa_id": message.wa_id}
                            ],
                            "messages": [
                                {
                                    "from": message.wa_id,
                                    "id": message.wamid,
                                    "timestamp": TIMESTAMP,
                                    "text": {"body": message.text},
                                    "type": "text",
                                }
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def http_request(host: str, path: str, body: bytes, app_secret: str) -> bytes:
    """A complete keep-alive HTTP/1.1 POST, headers as Meta sends them."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "Accept: */*\r\n"
        "Content-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature(app_secret, body)}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def distinct_messages(run_id: str, start: int = 0, customers: int = 5_000) -> Iterator[Message]:
    """An endless stream of distinct messages (distinct wamids) from `customers` senders."""
    seq = start
    while True:
        n = seq % customers
        yield Message(
            seq=seq,
            wamid=wamid_for(run_id, seq),
            wa_id=f"1555{n:07d}",
            name=display_name(n),
            text=f"Hello, is order {seq} ready?",
        )
        seq += 1


def open_loop_schedule(
    run_id: str,
    *,
    rate: float,
    seconds: float,
    repeat_customers: int = 200,
    new_share: float = 0.3,
    seed: int = 7,
) -> list[Message]:
    """Messages at a fixed rate (message i at i / rate seconds). Each is from a new customer
    with probability `new_share`, else from one of `repeat_customers` returning customers."""
    rng = random.Random(seed)
    count = int(rate * seconds)
    seen: set[str] = set()
    out: list[Message] = []
    new_n = 0
    for seq in range(count):
        if rng.random() < new_share:
            n = 1_000_000 + new_n
            new_n += 1
        else:
            n = rng.randrange(repeat_customers)
        wa_id = f"1666{n:07d}"
        out.append(
            Message(
                seq=seq,
                wamid=wamid_for(run_id, seq),
                wa_id=wa_id,
                name=display_name(n),
                text=f"Hi! message {seq}",
                offset=seq / rate,
                repeat=wa_id in seen,
            )
        )
        seen.add(wa_id)
    return out


def write_schedule(path: Path, messages: list[Message]) -> None:
    path.write_text(json.dumps([asdict(m) for m in messages]))


def read_schedule(path: Path) -> list[Message]:
    return [Message(**m) for m in json.loads(path.read_text())]
