"""Query parameters decoded the way the apiserver's parameter codec decodes them (Go's strconv)."""

from .status import bad_request

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def is_true(text) -> bool:
    """Lenient: anything strconv.ParseBool does not read as true is false."""
    return text in _TRUE


def parse_bool(query, key) -> bool:
    """strconv.ParseBool; an absent or empty parameter is false, anything unreadable a 400."""
    text = query.get(key, "")
    if text == "" or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    raise bad_request(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_int(query, key, default=None):
    """strconv.ParseInt; an absent or empty parameter is the default, anything unreadable a 400."""
    text = query.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text, 10)
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
