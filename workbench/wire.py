"""Records as JSON for the REST API, and back: the same `Hit`, `Answer` and `SourceView` on both sides.

`to_wire(record)` writes every field of a record (nested records included; a `Reason` as its kind
code and sentence; a `Citation` with its whole chunk, unlike `Citation.to_dict`, which keeps only
where it leads). `from_wire(cls, data)` rebuilds the record from that, reading the field types of
the dataclass; keys it does not know are ignored (a newer server may send more), missing ones take
the field's default. Leaves out: HTTP (`workbench_web.api`, `workbench.remote`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

from workbench.records import Answer, Hit, Hits, Reason, Refusal, SearchTrace, WeakEvidence

OUTCOMES = {"refusal": Refusal, "weakness": WeakEvidence}  # Answer fields holding a Reason, and its kinds


def to_wire(obj: Any) -> Any:
    """Plain JSON-able data of a record (see module)."""
    if isinstance(obj, Reason):
        return {"kind": obj.kind.value, "text": obj.text}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def answer_to_wire(answer: Answer) -> dict:
    """An `Answer` on the wire, with what a reader of the JSON wants at hand (``refused``, ``flags``)."""
    return {**to_wire(answer), "refused": answer.refused, "refusal_reason": answer.refusal_reason,
            "weak_evidence": answer.weak_evidence, "flags": [str(f) for f in answer.flags()]}


def hits_to_wire(hits: Hits) -> dict:
    return {"hits": [to_wire(h) for h in hits], "trace": to_wire(hits.trace) if hits.trace else None,
            "generation": hits.trace.generation if hits.trace else None}


def hits_from_wire(data: dict) -> Hits:
    trace = data.get("trace")
    return Hits([from_wire(Hit, h) for h in data.get("hits") or []],
                trace=from_wire(SearchTrace, trace) if isinstance(trace, dict) else None)


@cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_wire(cls, data: Any):
    """The record of type ``cls`` written by `to_wire` (ValueError when ``data`` is not an object)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
    hints, values = _hints(cls), {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in OUTCOMES and cls is Answer:
            values[f.name] = None if value is None else Reason(OUTCOMES[f.name](value["kind"]), value["text"])
        else:
            values[f.name] = _value(hints[f.name], value)
    return cls(**values)


def _value(hint, value):
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return _value(kinds[0], value) if len(kinds) == 1 else value
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(_value(inner, v) for v in value)
    if dataclasses.is_dataclass(hint):
        return from_wire(hint, value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value
