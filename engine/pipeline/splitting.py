"""Bundle splitting, a channel step: one message per Bundle entry of a resource type.

A mapping gives one output per input, so a Bundle holding three Patients would give
one ADT. A channel with `split: {resource: Patient}` instead takes each Patient entry
as a message of its own: stored with its own id, filtered, mapped, queued and audited on
its own, exactly as the messages of an HL7 batch are (engine.pipeline.envelope), and the
source is told what became of each (`Receipt.parts`).

Decisions, each for a reason:
- A part is the entry's resource alone (fullUrl and request are dropped): that is what
  a FHIR mapping reads, and what a sender would have posted on its own.
- Each part gets the Bundle's time as its `meta.lastUpdated`, and the Bundle's
  `meta.source` as its own, only where the resource has none: the FHIR to HL7v2 mappings
  read MSH-7 and MSH-4 from the resource first and the Bundle second, so a split
  Patient maps to the same MSH-7/MSH-4 as the Bundle would have. What was carried is
  named in the part's audit detail, since the stored part then differs from the entry.
- Entries of other types, and entries without a resource (a DELETE in a transaction),
  are not taken; they are counted in every part's "received" audit detail and in the
  reply, so nothing goes unsaid; except in a transaction, which is then refused whole
  naming each such entry (`Bundle.entry[3]`, issue type not-supported), since FHIR
  processes a transaction entirely or not at all. With `*` every entry with a resource
  is a part, except a subscription notification's status entry (SubscriptionStatus, or
  the R4 backport's status Parameters), which is envelope, not data.
- A part without an id of its own (a POST in a transaction, with a urn:uuid fullUrl)
  gets a control id from its content (`sha256:` and 40 hex digits of the part as
  stored, the Bundle's time carried in), so the duplicate check knows a resent Bundle's
  parts; a part with an id keeps the codec's (id and version, or lastUpdated).
- The parent Bundle is not stored (unless refused whole); each part's "received"
  detail says where it came from: `{"split_from": <entry index>, "parts": n,
  "entries": m, "bundle": <hash>}`, the hash (SHA-256 of the Bundle as received) tying
  the siblings together.
- A Bundle with nothing to split is not an error: it goes through whole and is filtered
  (`failure`, a rule run before the channel's own), on record and acknowledged, since a
  notification holding only Observations is ordinary on a Patient channel. A Bundle
  whose `entry` is not a list of objects is refused whole, as a malformed message.
- Anything that is not a Bundle passes through unsplit (a Patient posted alone is
  already one message); the channel's filter decides about its type.
- A `transaction` Bundle is all or nothing, as FHIR defines it: the channel prepares
  every part (parse, validation, filter, mapping) before committing any, and when one is
  refused or fails, the whole Bundle is refused (kept as one rejected message, its
  problems naming each failing entry) and no part is queued; the parts of one that
  goes through are committed in one database transaction. A sender that chose a
  transaction cannot handle "two of three Patients went through"; it fixes the entry and
  resends the Bundle. Any other Bundle type (batch, collection, searchset, history, a
  notification) has independent entries: each part succeeds or fails on its own.
- One reply covers every part: a single OperationOutcome whose issues say, per entry
  (`expression` Bundle.entry[i].resource), which message id it became and how it went.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from engine.config.rules import SplitConfig
from engine.formats.fhir import decode_json, encode_json
from engine.formats.fhir_validation import MAX_ISSUES
from engine.message import Problem
from engine.security.crypto import content_hash

_STATUS_PROFILE = "subscription-status"  # in the backport IG's status profiles' URLs
NOT_SUPPORTED = "not-supported"  # the FHIR issue type of an entry this channel does not take
_WORD = re.compile(r"[A-Za-z]{1,64}")  # a resourceType fit to quote back (never content)


class Split(msgspec.Struct):
    """A split Bundle: its parts in entry order, each part's "received" audit detail,
    what is wrong with the Bundle itself (when it must be refused whole), and whether its
    parts stand or fall together (a transaction)."""

    messages: list[bytes]
    details: list[dict[str, Any]]
    problems: list[Problem]
    atomic: bool = False
    control_ids: list[str] = []  # per part; "" where the codec's (id and version) applies

    def index(self, part: int) -> int:
        """The Bundle.entry index of part number `part`."""
        return int(self.details[part]["split_from"])


class Splitter:
    def __init__(self, config: SplitConfig) -> None:
        self.resource = config.resource

    def split(self, raw: bytes) -> Split | None:
        """The parts of a Bundle, or None when `raw` is no Bundle, or one with nothing to
        split (it then goes through whole: the codec judges it, `failure` filters it)."""
        bundle = _bundle(raw)
        if bundle is None:
            return None
        entries = bundle.get("entry")
        if entries is None:
            return None
        problem = _malformed(entries)
        if problem is not None:
            return Split([], [], [problem])
        chosen, dropped = self._select(entries)
        if bundle.get("type") == "transaction" and dropped:
            return Split([], [], self._untaken(entries, chosen))
        if not chosen:
            return None
        time, source = _bundle_context(bundle)
        summary: dict[str, Any] = {"parts": len(chosen), "entries": len(entries),
                                   "bundle": content_hash(raw)}
        if dropped:
            summary["dropped"] = sum(dropped.values())
        messages, details, control_ids = [], [], []
        for index in chosen:
            resource, carried = _with_context(entries[index]["resource"], time, source)
            messages.append(encode_json(resource))
            control_ids.append("" if resource.get("id") else
                               f"sha256:{content_hash(messages[-1])[:40]}")
            detail = {"split_from": index, **summary}
            if carried:
                detail["carried"] = carried
            details.append(detail)
        return Split(messages, details, [], atomic=bundle.get("type") == "transaction",
                     control_ids=control_ids)

    def failure(self, resource: Any) -> str | None:
        """A rule run before the channel's filter: a Bundle that reaches it holds nothing
        to split (a Bundle with parts never does, its parts do instead)."""
        if not isinstance(resource, dict) or resource.get("resourceType") != "Bundle":
            return None
        entries = resource.get("entry")
        if isinstance(entries, list) and _malformed(entries) is None \
                and self._select(entries)[0]:
            return None  # a Bundle inside a Bundle split with `*`: taken whole, as a part
        what = "entries" if self.resource == "*" else f"{self.resource} entries"
        return f"split: the Bundle holds no {what}"

    def _select(self, entries: list[dict[str, Any]]) -> tuple[list[int], dict[str, int]]:
        """Indexes of the entries that become parts, and counts of the others by why."""
        chosen: list[int] = []
        dropped: dict[str, int] = {}
        for index, entry in enumerate(entries):
            resource = entry.get("resource")
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            if not isinstance(kind, str):
                dropped["no resource"] = dropped.get("no resource", 0) + 1
            elif kind == self.resource or (self.resource == "*" and not _is_status(resource)):
                chosen.append(index)
            else:
                dropped[kind] = dropped.get(kind, 0) + 1
        return chosen, dropped

    def _untaken(self, entries: list[dict[str, Any]], chosen: list[int]) -> list[Problem]:
        """Why a transaction is refused whole: per entry this channel does not take
        (another type, or no resource), a problem located at that entry. FHIR processes a
        transaction entirely or not at all, so an entry left out cannot be answered 200."""
        taken = set(chosen)
        what = "every resource but a status" if self.resource == "*" else \
            f"{self.resource} entries"
        problems = []
        for index, entry in enumerate(entries):
            if index in taken:
                continue
            if len(problems) == MAX_ISSUES:
                problems.append(Problem(f"{len(entries) - len(taken) - MAX_ISSUES} more "
                                        "entries are not taken", code=NOT_SUPPORTED,
                                        segment="Bundle.entry"))
                break
            resource = entry.get("resource")
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            name = f"a {kind} entry" if isinstance(kind, str) and _WORD.fullmatch(kind) \
                else "an entry without a resource"
            problems.append(Problem(
                f"{name} is not taken by this channel (it takes {what}); a transaction is "
                "taken whole or not at all", code=NOT_SUPPORTED, segment=f"Bundle.entry[{index}]"))
        return problems

    def reply(self, split: Split, replies: list[bytes], message_ids: list[str]) -> bytes:
        """One OperationOutcome for the whole Bundle: each part's own reply (an
        OperationOutcome from the codec) located at its entry and naming its message id,
        then what was not taken, then what is wrong with the Bundle itself."""
        issues: list[dict[str, Any]] = []
        for detail, reply, message_id in zip(split.details, replies, message_ids,
                                             strict=False):
            where = [f"Bundle.entry[{detail['split_from']}].resource"]
            for issue in _issues(reply):
                text = issue.get("diagnostics", "")
                if message_id:
                    issue["diagnostics"] = f"message {message_id}: {text}"
                issues.append({**issue, "expression": where})
        if split.details and split.details[0].get("dropped"):
            what = "entry was" if split.details[0]["dropped"] == 1 else "entries were"
            issues.append({"severity": "information", "code": "informational",
                           "diagnostics": f"{split.details[0]['dropped']} {what} not taken "
                                          f"(not {self.resource} entries)"})
        issues += [{"severity": "error", "code": "structure", "diagnostics": p.text}
                   for p in split.problems]
        if not issues:
            issues = [{"severity": "information", "code": "informational",
                       "diagnostics": "accepted"}]
        return encode_json({"resourceType": "OperationOutcome", "issue": issues})


class _Head(msgspec.Struct):
    resourceType: Any = None


_decode_head = msgspec.json.Decoder(_Head).decode


def _bundle(raw: bytes) -> dict[str, Any] | None:
    """The Bundle, decoded; None for anything else. Every message of the channel passes
    here, so the type is read first without building the body: a Patient costs a skim."""
    try:
        if _decode_head(raw).resourceType != "Bundle":
            return None
        body = decode_json(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # read whole: the codec then says what is wrong
    return body if isinstance(body, dict) else None


def _malformed(entries: Any) -> Problem | None:
    if not isinstance(entries, list):
        return Problem("Bundle.entry is not a list", code="102")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return Problem(f"Bundle.entry[{index}] is not an object", code="102")
    return None


def _is_status(resource: dict[str, Any]) -> bool:
    """A subscription notification's status entry (R4B/R5 SubscriptionStatus, or the R4
    backport's Parameters carrying the status profile)."""
    if resource.get("resourceType") == "SubscriptionStatus":
        return True
    if resource.get("resourceType") != "Parameters":
        return False
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return isinstance(profiles, list) and any(
        isinstance(p, str) and _STATUS_PROFILE in p for p in profiles)


def _bundle_context(bundle: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Bundle's time (timestamp, else meta.lastUpdated) and its meta.source."""
    meta = bundle.get("meta") if isinstance(bundle.get("meta"), dict) else {}
    time = bundle.get("timestamp") or meta.get("lastUpdated")
    source = meta.get("source")
    return (time if isinstance(time, str) else None,
            source if isinstance(source, str) else None)


def _with_context(resource: dict[str, Any], time: str | None, source: str | None
                  ) -> tuple[dict[str, Any], list[str]]:
    """The resource with the Bundle's time and source where it has none, and the list
    of what was carried (empty when the resource is unchanged)."""
    meta = resource.get("meta")
    if meta is not None and not isinstance(meta, dict):
        return resource, []  # malformed meta: leave it for the mapping to report
    meta = dict(meta or {})
    carried = []
    if time and not meta.get("lastUpdated"):
        meta["lastUpdated"] = time
        carried.append("meta.lastUpdated")
    if source and not meta.get("source"):
        meta["source"] = source
        carried.append("meta.source")
    return ({**resource, "meta": meta} if carried else resource), carried


def _issues(reply: bytes) -> list[dict[str, Any]]:
    try:
        outcome = decode_json(reply)
    except msgspec.DecodeError:
        return [{"severity": "error", "code": "exception", "diagnostics": "no reply"}]
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    return [dict(i) for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []
