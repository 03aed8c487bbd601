"""Reading Prometheus text the way a scraper does, for tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """The samples of one scrape: sums over label subsets, and the names exported."""

    def __init__(self, text: str) -> None:
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample named `name` whose labels include `labels` (0 when none)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def has(self, name: str, **labels: str) -> bool:
        """Whether some sample named `name` carries `labels`."""
        return any(s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) for s in self.samples)

    def names(self) -> set[str]:
        """Every sample name (with _bucket, _sum, _count, _total)."""
        return {s.name for s in self.samples}

    def label_values(self) -> set[str]:
        """Every label value of every sample."""
        return {v for s in self.samples for v in s.labels.values()}
