"""Reactive automation (pure): what the tenant's rules and the bot do with an inbound message.

`plan` returns intents — reply, add labels, assign, hand off, look up the order status — that the
application layer turns into events (checking windows and consent, picking agents). Matching is
case- and accent-insensitive on word boundaries; time-of-day conditions use the message's
provider time in the tenant's time zone, so replaying a message decides the same way.

Order of play for one message:
1. the tenant's enabled rules, by priority (then id); every matching rule acts, until one that
   says stop_processing;
2. if the conversation is with the bot and no rule replied or handed off: a request for a human
   (handoff keywords) hands off; the built-in answers (opening hours, order status) answer;
   anything else is "unanswered" — the bot says what it can do, and after
   `bot_unanswered_handoff_after` (default 2) such messages in a row it hands off to a human.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_conversation import config
from parlay_conversation.domain import (
    HANDLER_BOT,
    HANDLER_HUMAN,
    SENDER_BOT,
    SENDER_BOT_FALLBACK,
    ConversationState,
)

DEFAULT_HANDOFF_KEYWORDS = (
    "agent",
    "human",
    "person",
    "real person",
    "live agent",
    "talk to someone",
    "speak to someone",
    "operator",
    "representative",
    "persona",
    "humano",
    "humana",
    "agente",
    "operador",
    "operadora",
    "representante",
    "atendente",
    "humain",
    "conseiller",
    "mensch",
    "mitarbeiter",
    "medewerker",
)

DEFAULT_HANDOFF_REPLY = "Connecting you with a person from our team. Someone will reply shortly."
DEFAULT_BOT_FALLBACK = (
    "Sorry, I did not get that. I can tell you our opening hours or where your order is; "
    "type 'agent' to talk to a person."
)
ORDER_STATUS_UNKNOWN = "I could not find an order for you."

_ORDER_STATUS = re.compile(
    r"where('?s| is) my (order|package|parcel|delivery)|order status|status of my order"
    r"|track(ing)? (my )?order|donde esta mi (pedido|orden|paquete)|estado de mi (pedido|orden)"
    r"|cade (o )?meu pedido|onde esta (o )?meu pedido|status do (meu )?pedido"
    r"|ou est ma commande|wo ist meine bestellung|waar is mijn bestelling"
)
_OPENING_HOURS = re.compile(
    r"opening hours|business hours|what time do you (open|close)|when (are|do) you (open|close)"
    r"|are you open|your hours|horario|hora de apertura|a que hora (abren|cierran)"
    r"|que horas (abre|fecha|abrem|fecham)|heures d'ouverture|offnungszeiten|openingstijden"
)


def normalize(text: str) -> str:
    """Case-folded, accents removed, whitespace collapsed (what matching compares)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.replace("\u2019", "'").split())


@functools.lru_cache(maxsize=4096)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    words = [normalize(k) for k in keywords if k.strip()]
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def has_keyword(text: str, keywords: Sequence[str]) -> bool:
    pattern = _keyword_pattern(tuple(keywords))
    return bool(pattern and pattern.search(normalize(text)))


def asks_for_human(text: str, settings: ce.InboxSettings) -> bool:
    return has_keyword(text, list(settings.handoff_keywords) or DEFAULT_HANDOFF_KEYWORDS)


def asks_order_status(text: str) -> bool:
    return bool(_ORDER_STATUS.search(normalize(text)))


#: Short replies that answer the business (an order's "Reply OK to confirm") rather than ask
#: the bot anything; the orders service acts on them, so the bot stays quiet.
_ACKNOWLEDGEMENTS = frozenset(
    {"ok", "okay", "k", "yes", "y", "si", "oui", "ja", "confirm", "confirmar", "confirmer", "👍"}
)


def answers_the_business(content: ge.MessageContent) -> bool:
    """A cart, an order button ("confirm:<id>", "cancel:<id>") or a bare acknowledgement."""
    kind = content.WhichOneof("kind")
    if kind == "order":
        return True
    if kind == "interactive_reply":
        r = content.interactive_reply
        return any(v.startswith(("confirm:", "cancel:")) for v in (r.reply_id, r.payload))
    if kind == "text":
        return normalize(content.text.body).strip(" .!¡") in _ACKNOWLEDGEMENTS
    return False


def asks_opening_hours(text: str) -> bool:
    return bool(_OPENING_HOURS.search(normalize(text)))


# ------------------------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    sender: str


@dataclass(frozen=True, slots=True)
class AddLabels:
    labels: tuple[str, ...]
    actor: str


@dataclass(frozen=True, slots=True)
class Assign:
    agent_id: str
    team_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class HandOff:
    to: str
    reason: str
    team_id: str = ""


@dataclass(frozen=True, slots=True)
class LookUpOrderStatus:
    """Answer "where is my order?" from the orders service (the application layer does I/O)."""


Intent = Reply | AddLabels | Assign | HandOff | LookUpOrderStatus


# ------------------------------------------------------------------------------- rules


def _in_window(condition: ce.RuleCondition, at_local: datetime) -> bool:
    if condition.weekdays and at_local.isoweekday() not in condition.weekdays:
        return False
    if not condition.from_time:
        return True
    start = config.parse_hhmm("from_time", condition.from_time)
    end = config.parse_hhmm("to_time", condition.to_time)
    t = at_local.time().replace(second=0, microsecond=0)
    if start <= end:
        return start <= t < end
    return t >= start or t < end  # wraps past midnight


def rule_matches(
    rule: ce.AutomationRule, *, text: str, channel: str, at_local: datetime, handler: str
) -> bool:
    c = rule.condition
    if c.channels and channel not in c.channels:
        return False
    if c.handler and c.handler != handler:
        return False
    if not _in_window(c, at_local):
        return False
    if c.keywords and not has_keyword(text, list(c.keywords)):
        return False
    if c.regex:
        try:
            if not _regex(c.regex).search(text[: config.MAX_TEXT]):
                return False
        except re.error:
            return False
    return True


def rule_intents(rule: ce.AutomationRule) -> list[Intent]:
    a = rule.action
    reason = f"rule:{rule.rule_id}"
    intents: list[Intent] = []
    if a.add_labels:
        intents.append(AddLabels(tuple(a.add_labels), f"automation:{rule.rule_id}"))
    if a.hand_off_to:
        intents.append(HandOff(a.hand_off_to, reason, a.assign_team_id))
    if a.assign_agent_id or (a.assign_team_id and a.hand_off_to != HANDLER_HUMAN):
        intents.append(Assign(a.assign_agent_id, a.assign_team_id, reason))
    if a.reply_text:
        intents.append(Reply(a.reply_text, f"automation:{rule.rule_id}"))
    return intents


def sorted_rules(rules: Sequence[ce.AutomationRule]) -> list[ce.AutomationRule]:
    return sorted((r for r in rules if r.enabled), key=lambda r: (r.priority, r.rule_id))


# ------------------------------------------------------------------------------- plan


def plan(
    state: ConversationState,
    *,
    text: str,
    channel: str,
    at: datetime,
    settings: ce.InboxSettings,
    rules: Sequence[ce.AutomationRule],
    answers_business: bool = False,
) -> list[Intent]:
    """Intents for an inbound message just appended to `state`. `answers_business`: the
    message answers the business (see `answers_the_business`); rules still apply, the bot does
    not answer it nor count it as a miss."""
    handler = state.handler
    at_local = config.local(at, settings)
    intents: list[Intent] = []
    acted = False
    for rule in sorted_rules(rules):
        if not rule_matches(rule, text=text, channel=channel, at_local=at_local, handler=handler):
            continue
        produced = rule_intents(rule)
        intents += produced
        acted = acted or any(isinstance(i, Reply | HandOff) for i in produced)
        if rule.stop_processing:
            break
    if handler != HANDLER_BOT or acted or answers_business:
        return intents
    if asks_for_human(text, settings):
        return [
            *intents,
            HandOff(HANDLER_HUMAN, "customer_request", settings.default_team_id),
            Reply(settings.handoff_reply_text or DEFAULT_HANDOFF_REPLY, SENDER_BOT),
        ]
    hours = config.opening_hours_text(settings)
    if hours and asks_opening_hours(text):
        return [*intents, Reply(hours, SENDER_BOT)]
    if asks_order_status(text):
        return [*intents, LookUpOrderStatus()]
    return [*intents, *unanswered(state, settings)]


def unanswered(state: ConversationState, settings: ce.InboxSettings) -> list[Intent]:
    """The bot could not answer: say what it can do, or hand off after too many misses."""
    after = settings.bot_unanswered_handoff_after or config.DEFAULT_UNANSWERED_HANDOFF_AFTER
    if state.bot_unanswered + 1 >= after:
        return [
            HandOff(HANDLER_HUMAN, "bot_unanswered", settings.default_team_id),
            Reply(settings.handoff_reply_text or DEFAULT_HANDOFF_REPLY, SENDER_BOT),
        ]
    return [Reply(settings.bot_fallback_text or DEFAULT_BOT_FALLBACK, SENDER_BOT_FALLBACK)]
