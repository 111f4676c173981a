"""The inside of the JSON body's `logs` strings: byte for byte what `json.dumps(text,
ensure_ascii=False)` writes, for every character a log can hold, and a lone surrogate (which UTF-8
cannot hold, so the fast encoder refuses it) still goes out as Python's encoder writes it."""

import json

import pytest

from tasklogs.render import json_string_body

TEXTS = {
    "ascii": "".join(chr(code) for code in range(128)),
    "quotes and backslashes": 'say "hi" \\ C:\\path\\ \\" \\\\',
    "controls": "\x00\x01\x08\t\n\x0b\x0c\r\x1b[31mred\x1b[0m\x1f\x7f",
    "beyond ascii": "\u00e9t\u00e9 \u65e5\u672c \u2028\u2029 \U0001f600 </script>",
    "empty": "",
}


def inside(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_the_same_bytes_as_json_dumps(text):
    assert json_string_body(text) == inside(text)
    assert json.loads(b'"' + json_string_body(text) + b'"') == text


def test_a_lone_surrogate_goes_out_as_python_writes_it():
    text = "before \ud800 after\n"
    assert json_string_body(text) == inside(text) == b"before \xed\xa0\x80 after\\n"
