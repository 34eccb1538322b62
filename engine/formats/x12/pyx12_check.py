"""Element-level checks of an X12 set by pyx12's 5010 maps, for strict validation.

Our own definitions (structure.py, sets/) place segments in loops and check the codes a
mapping relies on; pyx12's maps know every element's data type, length, usage and full
code list. This module runs pyx12's map walker and segment validator over one parsed set
and turns what they find into our `Issue`s, reading only their codes and coordinates:

- pyx12's message texts and the values it quotes are never read out or logged; each
  issue's text is ours and names the segment, element and code only;
- its 999/997/HTML writers and its document driver (`x12n_document`, which reloads the
  XML maps on every call and raises on sets without a map) are not used: the driver here
  walks our already-split segments and the maps are loaded once per map file;
- only sets the engine has a definition for are given to it (pyx12 deepens our check);
- any exception from pyx12 (EngineError, KeyError, anything) leaves the set to our own
  structure check: a PHI-free warning naming the exception type is logged at most once a
  minute per kind, and the set is never refused because pyx12 failed;
- it runs in the calling thread, bounded without signals: sets above `MAX_BYTES` are
  not given to it (it walks about 0.3 ms a segment, some 3.5 s a megabyte on our
  2-core machine, against 0.3 s for our own reader), and a walk still going after
  `TIME_LIMIT` seconds is abandoned between two segments; both leave the set to our
  structure check, with a warning;
- its known false positive (two or more PLB segments in an 835 reported as the FOOTER
  loop over its maximum) is dropped, and so is anything on a segment and element our
  structure reader already reported, and its segment-level findings once our reader
  found a segment missing or out of place (they would be the same fault again);
- pyx12's loggers are cut off from ours and disabled: its error handler logs values.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import pyx12.map_if  # type: ignore[import-untyped]
import pyx12.map_index  # type: ignore[import-untyped]
import pyx12.params  # type: ignore[import-untyped]
import pyx12.segment  # type: ignore[import-untyped]
from pyx12.map_walker import walk_tree  # type: ignore[import-untyped]

from engine.formats.x12.message import X12Message
from engine.formats.x12.structure import OUT_OF_SEQUENCE, Issue

log = logging.getLogger(__name__)

MAX_BYTES = 512_000  # larger sets are judged by our structure alone (time bound)
TIME_LIMIT = 2.0  # seconds of pyx12 walking per set before it is abandoned
_WARN_EVERY = 60.0  # seconds between two warnings of one kind


def _silence_pyx12() -> None:
    """pyx12 logs offending element values (its error handler, at ERROR): none of its
    loggers may emit, whatever level a logging configuration sets on them. "pyx12" stops
    propagation to the engine's handlers, and each of its loggers is disabled, which
    no level overrides."""
    top = logging.getLogger("pyx12")
    if not any(isinstance(h, logging.NullHandler) for h in top.handlers):
        top.addHandler(logging.NullHandler())
    top.propagate = False
    top.setLevel(logging.CRITICAL + 1)
    names = {n for n in logging.Logger.manager.loggerDict if n.startswith("pyx12.")}
    for name in {"pyx12", *_PYX12_LOGGERS, *names}:
        logging.getLogger(name).disabled = True


# The loggers pyx12 4 creates (some only when a module we do not import is imported, or
# on first use), made now so they are disabled before they exist for pyx12.
_PYX12_LOGGERS = ("pyx12.error_handler", "pyx12.walk_tree", "pyx12.params",
                  "pyx12.error_997", "pyx12.errh_xml", "pyx12.x12xml.simple")
_silence_pyx12()

_SEGMENT_CODES = {"1": "is not recognised", "2": "is not expected here",
                  "3": "is required and missing", "4": "opens a loop more often than allowed",
                  "5": "repeats more often than allowed", "6": "is not in the set",
                  "7": "is out of order", "8": "has data element errors"}
_ELEMENT_CODES = {"1": "is required and missing", "2": "is required by another element",
                  "3": "is one element too many", "4": "is too short", "5": "is too long",
                  "6": "holds an invalid character", "7": "holds an invalid code",
                  "8": "holds an invalid date", "9": "holds an invalid time",
                  "10": "is excluded by another element"}

_lock = threading.Lock()
_warned: dict[str, float] = {}


def element_issues(message: X12Message) -> list[Issue]:
    """What pyx12's map for the set finds wrong that our structure reader did not; []
    when pyx12 has no map for the set, the set is too big, or pyx12 itself failed. A set
    the engine has no definition of (an 820) is routed unchecked, as before: pyx12
    deepens our check, it does not start one."""
    if message.definition is None:
        return []
    if _size(message) > MAX_BYTES:
        _warn("size", f"set over {MAX_BYTES} bytes: element checks by pyx12 skipped")
        return []
    try:
        found = _run(message, time.monotonic() + TIME_LIMIT)
    except _TooSlow:
        _warn("time", f"pyx12 took over {TIME_LIMIT} s on a set: element checks skipped")
        return []
    except Exception as exc:  # pyx12 failing must never refuse a set
        kind = type(exc).__name__
        _warn(kind, f"pyx12 failed ({kind}) on a {message.segments[0].element(1)} set; "
                    "judged by our structure alone")
        return []
    return _keep(message, found)


def has_map(message: X12Message) -> bool:
    """Whether pyx12 has a map for the set's group (GS08, GS01) and ISA12. Its own
    index decides: the 277 (X212) map it ships but leaves out of the index does not
    place the HL loops of a sound 277, so it is not used."""
    try:
        return _map_file(message) is not None
    except Exception:
        return False


# -- running pyx12 -------------------------------------------------------------------------


def _map_file(message: X12Message) -> str | None:
    icvn, vriic, fic = message.isa.element(12), message.gs.element(8), message.gs.element(1)
    return _index().get_filename(icvn, vriic, fic)


@lru_cache(maxsize=1)
def _index() -> Any:
    return pyx12.map_index.map_index()


@lru_cache(maxsize=1)
def _params() -> Any:
    return pyx12.params.params()


@lru_cache(maxsize=32)
def _load(map_file: str) -> Any:
    """One map, parsed once (pyx12's tree holds no per-document state: counts live in
    the walker)."""
    return pyx12.map_if.load_map_file(map_file, _params())


def _map(map_file: str) -> Any:
    with _lock:  # two threads on a cold cache would parse the same XML twice
        return _load(map_file)


class _TooSlow(Exception):
    pass


def _run(message: X12Message, deadline: float) -> list[Issue]:
    map_file = _map_file(message)
    if map_file is None:
        return []
    root = _map(map_file)
    d = message.delimiters
    rep = d.repetition or "^"

    def seg(text_of: Any) -> Any:
        return pyx12.segment.Segment(text_of.text(), d.segment, d.element, d.component, rep)

    walker = walk_tree()
    walker.forceWalkCounterToLoopStart("/ISA_LOOP", "/ISA_LOOP/ISA")
    walker.forceWalkCounterToLoopStart("/ISA_LOOP/GS_LOOP", "/ISA_LOOP/GS_LOOP/GS")
    node = root.getnodebypath("/ISA_LOOP/GS_LOOP/GS")
    found: list[Issue] = []
    for position, segment in enumerate(message.segments, start=1):
        if time.monotonic() > deadline:  # ~0.1 us against pyx12's ~300 us a segment
            raise _TooSlow
        data = seg(segment)
        found_node, _pops, _pushes, walk_errors = walker.walk_errors(
            node, data, position, position, None)
        for err in walk_errors:
            where = err.seg_count or position
            seg_id = err.seg_data.get_seg_id() if err.seg_data is not None else segment.id
            found.append(_segment_issue(seg_id, where, err.err_cde))
        if found_node is None:  # unplaced: pyx12 would check it against the wrong node
            continue
        node = found_node
        _ok, ele_errors = node.is_valid_errors(data)
        for err in ele_errors:
            found.append(_element_issue(segment.id, position, err))
        if segment.id == "SE":
            break
    return found


def _segment_issue(seg_id: str, position: int, code: str) -> Issue:
    said = _SEGMENT_CODES.get(code, f"has segment error {code}")
    return Issue(seg_id, position, "", code, text=f"{seg_id} at position {position} {said} "
                                                  f"(IK304 {code}, pyx12 map)")


def _element_issue(seg_id: str, position: int, err: Any) -> Issue:
    element, component = _coordinates(err)
    code = err.err_cde
    said = _ELEMENT_CODES.get(code, f"has element error {code}")
    name = f"{seg_id}{element:02d}" + (f"-{component}" if component else "")
    if not element:
        return Issue(seg_id, position, "", "8",
                     text=f"{seg_id} at position {position} has data element errors "
                          f"(IK403 {code}, pyx12 map)")
    return Issue(seg_id, position, "", "8", element, code,
                 text=f"{name} at position {position} {said} (IK403 {code}, pyx12 map)")


def _coordinates(err: Any) -> tuple[int, int]:
    """(element, component) of an element error: from the map node when pyx12 gives
    one, else from its reference designator ("05", "CLP05" or a syntax rule's 5);
    (0, 0) when neither."""
    node = err.map_node
    if node is not None:
        parent = node.parent
        if parent is not None and parent.is_composite():
            return int(parent.seq), int(node.seq)
        return int(node.seq), 0
    refdes = err.refdes
    if isinstance(refdes, int):  # a syntax rule names its element by number
        return refdes, 0
    tail = str(refdes or "")[-2:]
    return (int(tail), 0) if tail.isdecimal() else (0, 0)


# -- what to keep --------------------------------------------------------------------------


def _keep(message: X12Message, found: list[Issue]) -> list[Issue]:
    """Drop pyx12's known false positive and what our structure reader already said;
    fill in our loop id; one issue per (segment, position, element, code). Once our
    reader found a segment out of place or missing, pyx12's own segment-level findings
    are dropped: its walker loses its place differently and would report the same fault
    again as a cascade of missing segments."""
    ours = {(i.segment, i.position, i.element) for i in message.issues}
    # a segment only out of sequence was still read into its loop: pyx12 calls it
    # unrecognized, or the one before it missing, where ours says 7; what it says of
    # other segments still counts
    structure_broken = any(not i.element and i.code != OUT_OF_SEQUENCE
                           for i in message.issues)
    moved = {i.segment for i in message.issues if i.code == OUT_OF_SEQUENCE}
    loops = _loop_at(message)
    st01 = message.segments[0].element(1)
    kept: list[Issue] = []
    seen: set[tuple[str, int, int, str]] = set()
    for issue in found:
        if st01 == "835" and issue.segment == "PLB" and issue.code in ("4", "5"):
            continue  # pyx12 counts every PLB as a new FOOTER loop
        if (issue.segment, issue.position, issue.element) in ours:
            continue
        if not issue.element and (structure_broken or issue.segment in moved):
            continue
        key = (issue.segment, issue.position, issue.element, issue.element_code)
        if key in seen:
            continue
        seen.add(key)
        kept.append(Issue(issue.segment, issue.position, loops.get(issue.position, ""),
                          issue.code, issue.element, issue.element_code, issue.text))
    return kept


def _loop_at(message: X12Message) -> dict[int, str]:
    tree = message.tree
    if tree is None:
        return {}
    return {position: node.id for node in tree.walk() for position in node.positions}


def _size(message: X12Message) -> int:
    return sum(len(s.elements) + sum(len(e) for e in s.elements) for s in message.segments)


def _warn(kind: str, text: str) -> None:
    now = time.monotonic()
    with _lock:
        last = _warned.get(kind)
        if last is not None and now - last < _WARN_EVERY:
            return
        _warned[kind] = now
    log.warning(text)
