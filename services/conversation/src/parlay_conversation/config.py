"""Inbox configuration per tenant: agents, teams, automation rules and inbox settings (pure).

Each is an event-sourced aggregate on the conversation topic ("agent", "team", "automation_rule",
"inbox_settings"), so the whole inbox — configuration included — rebuilds from the log. Their
aggregate ids are derived from (tenant, id): the event store's (aggregate_id, version) is unique
across tenants, and two tenants may both have an agent "ana".
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from google.protobuf.message import Message

from parlay.conversation.v1 import conversation_events_pb2 as ce
from parlay.gateway.v1 import gateway_events_pb2 as ge
from parlay_kit.envelope import deterministic_event_id
from parlay_kit.errors import InvalidArgument

AGENT = "agent"
TEAM = "team"
RULE = "automation_rule"
SETTINGS = "inbox_settings"
CONFIG_AGGREGATES = (AGENT, TEAM, RULE, SETTINGS)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_LABEL = re.compile(r"^[\w][\w .:/#&+-]{0,62}$", re.UNICODE)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.[A-Z][A-Za-z0-9]*$")
MAX_REGEX = 500
MAX_TEXT = 4096

ASSIGN_ROUND_ROBIN = "round_robin"
ASSIGN_MANUAL = "manual"

DEFAULT_THANK_YOU_TIME = "10:00"
DEFAULT_UNANSWERED_HANDOFF_AFTER = 2


def aggregate_id(kind: str, tenant_id: str, key: str = "") -> str:
    return deterministic_event_id("inbox", kind, tenant_id, key)


def check_id(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(field, "is required")
    if not _ID.match(value):
        raise InvalidArgument(
            field, "must be 1-128 characters: letters, digits and _ . : @ - (no spaces)"
        )
    return value


def normalize_labels(labels: list[str] | tuple[str, ...], field: str = "labels") -> list[str]:
    out: set[str] = set()
    for raw in labels:
        label = raw.strip().lower()
        if not label:
            raise InvalidArgument(field, "labels must not be empty")
        if not _LABEL.match(label):
            raise InvalidArgument(field, f"label {raw!r} is not valid (at most 63 characters)")
        out.add(label)
    if len(out) > 50:
        raise InvalidArgument(field, "at most 50 labels")
    return sorted(out)


def parse_hhmm(field: str, value: str) -> time:
    m = _HHMM.match(value.strip())
    if not m:
        raise InvalidArgument(field, "must be a local time HH:MM (00:00-23:59)")
    return time(int(m.group(1)), int(m.group(2)))


def _check_weekdays(field: str, days: list[int]) -> list[int]:
    for d in days:
        if not 1 <= d <= 7:
            raise InvalidArgument(field, "weekdays are 1 (Monday) to 7 (Sunday)")
    return sorted(set(days))


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument("settings.time_zone", f"unknown time zone {name!r}") from None


# ------------------------------------------------------------------------------- validation


def validate_agent(agent: ce.Agent) -> ce.Agent:
    out = ce.Agent()
    out.CopyFrom(agent)
    out.agent_id = check_id("agent.agent_id", agent.agent_id)
    out.display_name = agent.display_name.strip()
    if len(out.display_name) > 200:
        raise InvalidArgument("agent.display_name", "at most 200 characters")
    if agent.capacity < 0:
        raise InvalidArgument("agent.capacity", "must not be negative")
    teams = sorted({check_id("agent.team_ids", t) for t in agent.team_ids})
    del out.team_ids[:]
    out.team_ids.extend(teams)
    out.email = agent.email.strip().lower()
    return out


def validate_team(team: ce.Team) -> ce.Team:
    name = team.name.strip()
    if not name:
        raise InvalidArgument("team.name", "is required")
    return ce.Team(team_id=check_id("team.team_id", team.team_id), name=name[:200])


def validate_rule(rule: ce.AutomationRule) -> ce.AutomationRule:
    out = ce.AutomationRule()
    out.CopyFrom(rule)
    out.rule_id = check_id("rule.rule_id", rule.rule_id)
    out.name = rule.name.strip()[:200]
    c = out.condition
    keywords = sorted({k.strip() for k in c.keywords if k.strip()})
    del c.keywords[:]
    c.keywords.extend(keywords)
    if c.regex:
        if len(c.regex) > MAX_REGEX:
            raise InvalidArgument("rule.condition.regex", f"at most {MAX_REGEX} characters")
        try:
            re.compile(c.regex)
        except re.error as exc:
            raise InvalidArgument("rule.condition.regex", f"does not compile: {exc}") from None
    channels = sorted({ch.strip().lower() for ch in c.channels if ch.strip()})
    del c.channels[:]
    c.channels.extend(channels)
    if bool(c.from_time) != bool(c.to_time):
        raise InvalidArgument("rule.condition.to_time", "from_time and to_time go together")
    if c.from_time:
        parse_hhmm("rule.condition.from_time", c.from_time)
        parse_hhmm("rule.condition.to_time", c.to_time)
    days = _check_weekdays("rule.condition.weekdays", list(c.weekdays))
    del c.weekdays[:]
    c.weekdays.extend(days)
    if c.handler not in ("", "bot", "human"):
        raise InvalidArgument("rule.condition.handler", "must be bot, human or empty")
    a = out.action
    if a.hand_off_to not in ("", "bot", "human"):
        raise InvalidArgument("rule.action.hand_off_to", "must be bot, human or empty")
    if len(a.reply_text) > MAX_TEXT:
        raise InvalidArgument("rule.action.reply_text", f"at most {MAX_TEXT} characters")
    labels = normalize_labels(list(a.add_labels), "rule.action.add_labels")
    del a.add_labels[:]
    a.add_labels.extend(labels)
    if a.assign_agent_id:
        check_id("rule.action.assign_agent_id", a.assign_agent_id)
    if a.assign_team_id:
        check_id("rule.action.assign_team_id", a.assign_team_id)
    if not (a.reply_text or a.add_labels or a.assign_agent_id or a.assign_team_id or a.hand_off_to):
        raise InvalidArgument("rule.action", "a rule must do something")
    return out


def validate_settings(settings: ce.InboxSettings) -> ce.InboxSettings:
    out = ce.InboxSettings()
    out.CopyFrom(settings)
    time_zone(out.time_zone)
    for i, oh in enumerate(out.opening_hours):
        _check_weekdays(f"settings.opening_hours[{i}].weekdays", list(oh.weekdays))
        if not oh.weekdays:
            raise InvalidArgument(f"settings.opening_hours[{i}].weekdays", "is required")
        start = parse_hhmm(f"settings.opening_hours[{i}].open_time", oh.open_time)
        end = parse_hhmm(f"settings.opening_hours[{i}].close_time", oh.close_time)
        if end <= start:
            raise InvalidArgument(
                f"settings.opening_hours[{i}].close_time", "must be after open_time"
            )
    if out.bot_unanswered_handoff_after < 0:
        raise InvalidArgument("settings.bot_unanswered_handoff_after", "must not be negative")
    if out.first_response_target_seconds < 0:
        raise InvalidArgument("settings.first_response_target_seconds", "must not be negative")
    if out.resolution_target_seconds < 0:
        raise InvalidArgument("settings.resolution_target_seconds", "must not be negative")
    if out.assignment_mode not in ("", ASSIGN_ROUND_ROBIN, ASSIGN_MANUAL):
        raise InvalidArgument("settings.assignment_mode", "must be round_robin or manual")
    if out.default_team_id:
        check_id("settings.default_team_id", out.default_team_id)
    if out.thank_you_time:
        parse_hhmm("settings.thank_you_time", out.thank_you_time)
    for event_type, pm in out.proactive.items():
        if not _EVENT_TYPE.match(event_type):
            raise InvalidArgument(
                "settings.proactive", f"{event_type!r} is not a full event type name"
            )
        if pm.purpose not in ("", "transactional", "marketing"):
            raise InvalidArgument(
                f"settings.proactive[{event_type}].purpose", "must be transactional or marketing"
            )
    keywords = [k.strip() for k in out.handoff_keywords if k.strip()]
    del out.handoff_keywords[:]
    out.handoff_keywords.extend(keywords)
    return out


# ------------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """One configuration aggregate as the read model keeps it."""

    tenant_id: str
    kind: str
    key: str
    version: int
    removed: bool
    #: The serialized Agent / Team / AutomationRule / InboxSettings.
    data: bytes


def apply_config(
    current: ConfigRow | None, tenant_id: str, kind: str, version: int, payload: Message
) -> ConfigRow | None:
    """Fold a configuration event; None for payloads that are not configuration."""
    if isinstance(payload, ce.AgentSaved):
        return ConfigRow(
            tenant_id,
            AGENT,
            payload.agent.agent_id,
            version,
            False,
            payload.agent.SerializeToString(deterministic=True),
        )
    if isinstance(payload, ce.AgentAvailabilityChanged):
        agent = ce.Agent()
        if current is not None:
            agent.ParseFromString(current.data)
        agent.agent_id = payload.agent_id
        agent.available = payload.available
        return ConfigRow(
            tenant_id,
            AGENT,
            payload.agent_id,
            version,
            current.removed if current else False,
            agent.SerializeToString(deterministic=True),
        )
    if isinstance(payload, ce.AgentRemoved):
        return ConfigRow(
            tenant_id, AGENT, payload.agent_id, version, True, current.data if current else b""
        )
    if isinstance(payload, ce.TeamSaved):
        return ConfigRow(
            tenant_id,
            TEAM,
            payload.team.team_id,
            version,
            False,
            payload.team.SerializeToString(deterministic=True),
        )
    if isinstance(payload, ce.TeamRemoved):
        return ConfigRow(
            tenant_id, TEAM, payload.team_id, version, True, current.data if current else b""
        )
    if isinstance(payload, ce.AutomationRuleSaved):
        return ConfigRow(
            tenant_id,
            RULE,
            payload.rule.rule_id,
            version,
            False,
            payload.rule.SerializeToString(deterministic=True),
        )
    if isinstance(payload, ce.AutomationRuleRemoved):
        return ConfigRow(
            tenant_id, RULE, payload.rule_id, version, True, current.data if current else b""
        )
    if isinstance(payload, ce.InboxSettingsChanged):
        return ConfigRow(
            tenant_id,
            SETTINGS,
            "",
            version,
            False,
            payload.settings.SerializeToString(deterministic=True),
        )
    del kind
    return None


CONFIG_EVENT_TYPES = (
    ce.AgentSaved,
    ce.AgentAvailabilityChanged,
    ce.AgentRemoved,
    ce.TeamSaved,
    ce.TeamRemoved,
    ce.AutomationRuleSaved,
    ce.AutomationRuleRemoved,
    ce.InboxSettingsChanged,
)


def parse_agent(data: bytes) -> ce.Agent:
    agent = ce.Agent()
    agent.ParseFromString(data)
    return agent


def parse_team(data: bytes) -> ce.Team:
    team = ce.Team()
    team.ParseFromString(data)
    return team


def parse_rule(data: bytes) -> ce.AutomationRule:
    rule = ce.AutomationRule()
    rule.ParseFromString(data)
    return rule


def parse_settings(data: bytes) -> ce.InboxSettings:
    settings = ce.InboxSettings()
    settings.ParseFromString(data)
    return settings


# ------------------------------------------------------------------------------- time


def local(at: datetime, settings: ce.InboxSettings) -> datetime:
    return at.astimezone(time_zone(settings.time_zone))


def next_day_at(at: datetime, hhmm: str, settings: ce.InboxSettings) -> datetime:
    """The next local day after `at`, at local time hhmm (the thank-you's send time)."""
    tz = time_zone(settings.time_zone)
    t = parse_hhmm("thank_you_time", hhmm or DEFAULT_THANK_YOU_TIME)
    day = at.astimezone(tz).date() + timedelta(days=1)
    return datetime.combine(day, t, tzinfo=tz)


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def opening_hours_text(settings: ce.InboxSettings) -> str:
    """The built-in opening-hours answer ("" when the tenant has not set any)."""
    if settings.opening_hours_text:
        return settings.opening_hours_text
    if not settings.opening_hours:
        return ""
    parts = []
    for oh in settings.opening_hours:
        days = sorted(set(oh.weekdays))
        if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            label = f"{_DAY_NAMES[days[0] - 1]}-{_DAY_NAMES[days[-1] - 1]}"
        else:
            label = ", ".join(_DAY_NAMES[d - 1] for d in days)
        parts.append(f"{label} {oh.open_time}-{oh.close_time}")
    return f"Our opening hours: {'; '.join(parts)} ({settings.time_zone or 'UTC'})."


def is_open(settings: ce.InboxSettings, at: datetime) -> bool | None:
    """Whether `at` is inside the opening hours (None when none are set)."""
    if not settings.opening_hours:
        return None
    t = local(at, settings)
    for oh in settings.opening_hours:
        if t.isoweekday() in oh.weekdays:
            start = parse_hhmm("open_time", oh.open_time)
            end = parse_hhmm("close_time", oh.close_time)
            if start <= t.time().replace(second=0, microsecond=0) < end:
                return True
    return False


def template_from(t: ge.TemplateContent) -> ge.TemplateContent | None:
    return t if t.name else None
