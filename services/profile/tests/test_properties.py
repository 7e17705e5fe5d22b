"""Property-based tests (hypothesis) over random sequences of identity observations, evidence,
consent signals, merges, unmerges and unlinks in two tenants:

* no identity ever belongs to two customers, and nothing refers across tenants;
* every customer's state is the fold of its own events (the log is the truth), with gapless
  versions;
* unmerge(merge(x)) == x: merging two customers and undoing it gives back both profiles
  exactly (all but the stream version);
* the rules never put back together customers a person separated (unmerged or unlinked),
  only a person's merge may.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parlay_kit.errors import ParlayError
from parlay_profile import rules
from parlay_profile.memory import InMemoryProfiles

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TENANTS = ("t1", "t2")
PHONES = ("+16505550001", "+16505550002", "+447911000003")
EMAILS = ("ana@example.com", "bo@example.com")
IDENTITIES = (
    ("whatsapp", "16505550001"),
    ("twilio", "+16505550001"),
    ("sms", "+1 650 555 0001"),
    ("whatsapp", "16505550002"),
    ("sms", "+16505550002"),
    ("whatsapp", "447911000003"),
    ("telegram", "tg-1"),
    ("telegram", "tg-2"),
    ("webchat", "visitor-1"),
    ("webchat", "visitor-2"),
    ("line", "U1"),
    ("viber", "vb-1"),
)
TEXTS = ("", "hi", "STOP", "START", "baja", "arrêt")
NAMES = ("", "Ana", "Bo", "Ana")

tenant = st.sampled_from(TENANTS)
minute = st.integers(min_value=0, max_value=600)
identity = st.integers(min_value=0, max_value=len(IDENTITIES) - 1)
pick = st.integers(min_value=0, max_value=20)

ops = st.one_of(
    st.tuples(
        st.just("message"), tenant, identity, minute, st.sampled_from(TEXTS), st.sampled_from(NAMES)
    ),
    st.tuples(
        st.just("evidence"),
        tenant,
        identity,
        minute,
        st.sampled_from(("shared_phone", "changed_number", "verified_email")),
        st.integers(0, len(PHONES) - 1),
        st.integers(0, len(EMAILS) - 1),
    ),
    st.tuples(st.just("subscription"), tenant, identity, minute, st.booleans()),
    st.tuples(st.just("merge"), tenant, pick, pick),
    st.tuples(st.just("unmerge"), tenant, pick),
    st.tuples(st.just("roundtrip"), tenant, pick, pick),
    st.tuples(st.just("unlink"), tenant, identity),
)


class Run:
    def __init__(self) -> None:
        self.w = InMemoryProfiles()
        self.n = 0
        self.clock = T0
        #: Pairs of customers a person separated (and has not merged again since).
        self.apart: set[frozenset[str]] = set()

    def source(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def cmd(self, name: str, *args, **kw):
        return self.w.command(name, *args, at=self.now(), command_id=self.source(), **kw)

    def group_ids(self, cid: str) -> set[str]:
        return {s.customer_id for s in self.w.profiles.group(cid)}

    def merge(self, t: str, a: str, b: str) -> str:
        left, right = self.group_ids(self.w.root(a)), self.group_ids(self.w.root(b))
        merge_id = self.cmd("merge_customers", t, a, b, actor="p", reason="")
        self.apart -= {frozenset((x, y)) for x in left for y in right}
        return merge_id

    def unmerge(self, t: str, merge_id: str) -> None:
        survivor, merged = self.w.resolver.find_merge(t, merge_id)
        leaving = self.group_ids(merged.customer_id)
        staying = self.group_ids(self.w.root(survivor.customer_id)) - leaving
        self.cmd("unmerge_customers", t, merge_id, actor="p", reason="")
        self.apart |= {frozenset((x, y)) for x in leaving for y in staying}

    def roots(self, t: str) -> list[str]:
        return self.w.roots(t)

    def step(self, op: tuple) -> None:
        kind, t = op[0], op[1]
        if kind == "message":
            _, _, i, m, text, name = op
            ch, addr = IDENTITIES[i]
            self.w.observe(
                rules.observation(
                    tenant_id=t,
                    channel=ch,
                    address=addr,
                    display_name=name,
                    occurred_at=T0 + timedelta(minutes=m),
                    source_event_id=self.source(),
                    text=text,
                )
            )
        elif kind == "evidence":
            _, _, i, m, ev_kind, p, e = op
            ch, addr = IDENTITIES[i]
            self.w.observe(
                rules.EvidenceObservation(
                    tenant_id=t,
                    channel=ch,
                    channel_account_id="acc",
                    subject_channel=ch,
                    subject_address=addr,
                    kind=ev_kind,
                    phone=PHONES[p],
                    email=EMAILS[e],
                    occurred_at=T0 + timedelta(minutes=m),
                    source_event_id=self.source(),
                )
            )
        elif kind == "subscription":
            _, _, i, m, subscribed = op
            ch, addr = IDENTITIES[i]
            self.w.observe(
                rules.SubscriptionObservation(
                    tenant_id=t,
                    channel=ch,
                    channel_account_id="acc",
                    subject_channel=ch,
                    subject_address=addr,
                    subscribed=subscribed,
                    reason="x",
                    occurred_at=T0 + timedelta(minutes=m),
                    source_event_id=self.source(),
                )
            )
        elif kind in ("merge", "roundtrip"):
            roots = self.roots(t)
            if len(roots) < 2:
                return
            a, b = roots[op[2] % len(roots)], roots[op[3] % len(roots)]
            if a == b:
                return
            if kind == "merge":
                self.merge(t, a, b)
                return
            before = (comparable(self.w.view(a)), comparable(self.w.view(b)))
            states = {cid: self.w.state(cid) for cid in (a, b)}
            merge_id = self.merge(t, a, b)
            assert self.w.root(b) == a
            self.unmerge(t, merge_id)
            assert (comparable(self.w.view(a)), comparable(self.w.view(b))) == before
            for cid, then in states.items():
                now = self.w.state(cid)
                assert now.version == then.version + 2
                assert (
                    dataclasses.replace(
                        now, version=then.version, merges=then.merges, separated=then.separated
                    )
                    == then
                )
        elif kind == "unmerge":
            active = sorted(
                mid
                for cid in self.w.profiles.states
                for mid in self.w.state(cid).members
                if self.w.state(cid).tenant_id == t
            )
            if active:
                self.unmerge(t, active[op[2] % len(active)])
        elif kind == "unlink":
            ch, addr = IDENTITIES[op[2]]
            key = (ch, addr.strip())
            owner = self.w.owner(t, *key)
            if owner is not None:
                self.cmd("unlink_identity", t, self.w.root(owner), *key, actor="p", note="")

    def check(self) -> None:
        states = self.w.profiles.states
        # No identity belongs to two customers; the index agrees with the states.
        holders = Counter((s.tenant_id, *key) for s in states.values() for key in s.identities)
        assert all(n == 1 for n in holders.values()), holders
        assert set(self.w.profiles.identity_keys()) == set(holders)
        for s in states.values():
            # Nothing refers across tenants; merge pointers agree on both sides.
            if s.merged_into:
                survivor = states[s.merged_into]
                assert survivor.tenant_id == s.tenant_id
                assert survivor.members.get(s.merge_id) == s.customer_id
            for member in s.members.values():
                assert states[member].tenant_id == s.tenant_id
                assert states[member].merged_into == s.customer_id
            self.w.root(s.customer_id)  # no cycles
        # What a person separated, no rule joined again.
        for pair in self.apart:
            x, y = sorted(pair)
            assert self.w.root(x) != self.w.root(y), (x, y)


def comparable(v):
    return dataclasses.replace(v, version=0)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(ops, min_size=1, max_size=40))
def test_random_histories_keep_the_identity_graph_sound(history) -> None:
    run = Run()
    for op in history:
        with contextlib.suppress(ParlayError):  # a refused command changes nothing
            run.step(op)
        run.check()
    # The log is the truth: folding each stream gives the state, versions are gapless.
    refolded = run.w.refold()
    assert refolded == run.w.profiles.states
    streams = Counter(e.aggregate_id for e in run.w.log)
    for cid, state in run.w.profiles.states.items():
        assert state.version == streams[cid]
    assert len({e.event_id for e in run.w.log}) == len(run.w.log)
