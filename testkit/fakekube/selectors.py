"""Label and field selectors as list and watch requests give them."""

import re

from .status import bad_request

_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split_terms(text):
    """Split on commas that are not inside parentheses."""
    terms, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def _label_term(term):
    if m := _SET_TERM.match(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_TERM.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_TERM.match(term):
        negate, key = m.groups()
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    raise bad_request(f"unable to parse requirement: {term.strip()}")


def label_selector(text):
    """A predicate on a labels dict; None or "" selects everything."""
    tests = [_label_term(t) for t in _split_terms(text or "")]
    return lambda labels: all(test(labels or {}) for test in tests)


_FIELDS = {
    "metadata.name": lambda obj: obj["metadata"].get("name", ""),
    "metadata.namespace": lambda obj: obj["metadata"].get("namespace", ""),
    "status.phase": lambda obj: (obj.get("status") or {}).get("phase", ""),
    "spec.nodeName": lambda obj: (obj.get("spec") or {}).get("nodeName", ""),
}
_CUSTOM_RESOURCE_FIELDS = ("metadata.name", "metadata.namespace")


def field_selector(text, custom_resource=False):
    """A predicate on an object; supports = / == / != on the fields the apiserver indexes."""
    tests = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.groups()
        if field not in _FIELDS or (custom_resource and field not in _CUSTOM_RESOURCE_FIELDS):
            raise bad_request(f"field label not supported: {field}")
        tests.append((_FIELDS[field], op != "!=", value))
    return lambda obj: all((get(obj) == value) == equal for get, equal, value in tests)


def name_in_field_selector(text):
    """The name a `metadata.name=x` field selector pins, as the apiserver's RequestInfo takes it."""
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*metadata\.name\s*==?\s*(\S+)\s*$", term)
        if m:
            return m.group(1)
    return None
