"""A reference model of Kubernetes label selectors, written from the API reference and k8s.io/apimachinery
(not from control.agent.intent), over the raw YAML/JSON form a user writes.

``matches(raw, labels)``: ``None`` (a null selector) selects nothing; ``{}`` everything; every matchLabels
pair and every matchExpressions requirement must hold: ``In`` the key is there with one of the values,
``NotIn`` the key is missing or has another value, ``Exists`` the key is there, ``DoesNotExist`` it is not.

``problems(raw, path)``: every field path a strict validator refuses (empty list: valid). Kubernetes'
rules (ValidateLabelSelectorRequirement, IsQualifiedName, IsValidLabelValue) plus the agent's: an unknown
key anywhere in a selector is refused, and values must be strings.
"""
from __future__ import annotations

import string

ALNUM = set(string.ascii_letters + string.digits)
INNER = ALNUM | set("-_.")
DNS = set(string.ascii_lowercase + string.digits)
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def matches(raw, labels: dict) -> bool:
    if raw is None:
        return False
    for k, v in (raw.get("matchLabels") or {}).items():
        if k not in labels or labels[k] != v:
            return False
    for req in raw.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        there = key in labels
        if op == "In":
            ok = there and labels[key] in values
        elif op == "NotIn":
            ok = not there or labels[key] not in values
        elif op == "Exists":
            ok = there
        elif op == "DoesNotExist":
            ok = not there
        else:
            raise ValueError(op)
        if not ok:
            return False
    return True


def name_ok(s: str) -> bool:
    """A qualified name's name part, or a non-empty label value: 1-63 characters, alphanumerics, '-', '_'
    and '.', an alphanumeric first and last."""
    return 1 <= len(s) <= 63 and s[0] in ALNUM and s[-1] in ALNUM and all(c in INNER for c in s)


def subdomain_ok(s: str) -> bool:
    """RFC 1123 subdomain: at most 253 characters, dot-separated labels of lowercase alphanumerics and '-',
    each starting and ending with an alphanumeric."""
    if not 1 <= len(s) <= 253:
        return False
    for part in s.split("."):
        if not part or part[0] not in DNS or part[-1] not in DNS or any(c not in DNS | {"-"} for c in part):
            return False
    return True


def key_ok(k) -> bool:
    if not isinstance(k, str):
        return False
    parts = k.split("/")
    if len(parts) == 1:
        return name_ok(k)
    if len(parts) == 2:
        return subdomain_ok(parts[0]) and name_ok(parts[1])
    return False


def value_ok(v) -> bool:
    return isinstance(v, str) and (v == "" or name_ok(v))


def problems(raw, path: str = "selector") -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [path]
    out = [f"{path}.{k}" for k in raw if k not in ("matchLabels", "matchExpressions")]
    ml = raw.get("matchLabels")
    if ml is not None and not isinstance(ml, dict):
        out.append(f"{path}.matchLabels")
    elif ml:
        out += [f"{path}.matchLabels.{k}" for k, v in ml.items() if not key_ok(k) or not value_ok(v)]
    me = raw.get("matchExpressions")
    if me is not None and not isinstance(me, list):
        out.append(f"{path}.matchExpressions")
    elif me:
        for i, req in enumerate(me):
            p = f"{path}.matchExpressions[{i}]"
            if not isinstance(req, dict):
                out.append(p)
                continue
            out += [f"{p}.{k}" for k in req if k not in ("key", "operator", "values")]
            if not key_ok(req.get("key")):
                out.append(f"{p}.key")
            op = req.get("operator")
            if op not in OPERATORS:
                out.append(f"{p}.operator")
            values = req.get("values")
            if values is not None and not isinstance(values, list):
                out.append(f"{p}.values")
                continue
            values = values or []
            if (op in ("In", "NotIn") and not values) or (op in ("Exists", "DoesNotExist") and values):
                out.append(f"{p}.values")
            out += [f"{p}.values[{j}]" for j, v in enumerate(values) if not value_ok(v)]
    return out
