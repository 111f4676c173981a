"""Reading what `/metrics` says: the Prometheus text format parsed by prometheus-client's own parser."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: every sample by name and labels."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.families: dict[str, str] = {}  # metric name -> type
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels) -> float:
        """The sample with exactly these labels (0 when absent: a labelled child not yet made)."""
        return self.samples.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)

    def total(self, name: str, **labels) -> float:
        """The sum of the samples of `name` whose labels include these."""
        wanted = {(k, str(v)) for k, v in labels.items()}
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def label_values(self, prefix: str = "tasklogs_") -> dict[str, set[str]]:
        """Every value each label takes across the metrics whose names start with `prefix`."""
        values: dict[str, set[str]] = {}
        for name, labels in self.samples:
            if name.startswith(prefix):
                for key, value in labels:
                    values.setdefault(key, set()).add(value)
        return values


def scrape_url(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return Scrape(response.read().decode())
