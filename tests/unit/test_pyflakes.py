"""No unused imports or variables, no undefined names, anywhere in the project."""
import os

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Collected:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)


def test_pyflakes_finds_nothing():
    out = Collected()
    paths = [os.path.join(ROOT, name) for name in ("tasklogs", "tests", "bench", "wsgi.py", "gunicorn.conf.py")]
    count = checkRecursive(paths, Reporter(out, out))
    assert count == 0, "".join(out.lines)
