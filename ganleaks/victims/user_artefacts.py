"""What every victim the user brings shares: its queries are the user's member and non-member records.

A user's generator or sample set has no membership split of ours: its queries are the user's own
records (``queries.*``: image folders, arrays or CSV files, loaded by
:mod:`ganleaks.data.user_sets`, or a :class:`~ganleaks.data.user_sets.QuerySet` given in Python).
Their ids are the user's strings (paths, row numbers, an id column); the engines and batch files
key them by :func:`~ganleaks.data.user_sets.stable_key`, and ``scores.csv`` shows the strings.
Nobody here knows how the user's model was trained: its privacy statement is "unknown", or
"declared" when the user states a budget (``victim.privacy.epsilon``), which nothing here checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ganleaks.data.queries import Queries, choose_queries
from ganleaks.data.user_sets import QuerySet, check_same_scale, load_query_set
from ganleaks.errors import AttackConfigError
from ganleaks.victims.base import PrivacyStatement, Victim


class UserArtefactVictim(Victim):
    """Base of the user's victims: the query records, the null-control refusal, the privacy statement.

    Args:
        queries: the ``queries`` config (paths and how to read them), or a loaded :class:`QuerySet`.
        null_control: refused (a null control needs a model of ours that never saw the queries).
        privacy: ``{"epsilon": ..., "delta": ...}`` as the user declares them, or None.
    """

    def __init__(
        self,
        *,
        role: str = "victim",
        queries: Mapping[str, Any] | QuerySet | None = None,
        null_control: bool = False,
        privacy: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(role)
        if null_control:
            raise AttackConfigError("attack.null_control applies to victim=run; for your own victim, set it to false")
        self.query_source = queries
        self.declared_privacy = {k: v for k, v in dict(privacy or {}).items() if v is not None}
        self._query_set: QuerySet | None = None

    def query_set(self) -> QuerySet:
        """The user's members and non-members (loaded once)."""
        if self._query_set is None:
            self._query_set = self._load_query_set()
        return self._query_set

    def _load_query_set(self) -> QuerySet:
        source = self.query_source
        if isinstance(source, QuerySet):
            return source
        q = dict(source or {})
        missing = [f"queries.{k}" for k in ("members", "nonmembers") if q.get(k) is None]
        if missing:
            raise AttackConfigError(
                f"victim={self.kind} needs the records to query: set {' and '.join(missing)} to the members "
                "(the records the victim was trained on) and the non-members (held-out records of the same "
                "distribution), each an image folder, a .npy/.npz array or a .csv file"
            )
        return load_query_set(
            q["members"],
            q["nonmembers"],
            resolution=q.get("resolution"),
            channels=q.get("channels"),
            value_range=None if q.get("value_range") is None else list(q["value_range"]),
            id_column=q.get("id_column"),
            allow_identical=bool(q.get("allow_identical", False)),
        )

    def queries(self, num_queries: int | None, seed: int) -> Queries:
        query_set = self.query_set()
        sample_set = query_set.sample_set()
        member_keys = query_set.keys[query_set.labels == 1]
        nonmember_keys = query_set.keys[query_set.labels == 0]
        ids, labels = choose_queries(
            member_keys, nonmember_keys, num_queries, seed, balanced=False, where="the query sets"
        )
        data = sample_set.data[sample_set.positions(ids)]
        return Queries(sample_set, ids, labels, data, sample_set.fingerprint(), names=query_set.ids_of(ids))

    def model_name(self) -> str:
        """What the report calls the model (a class name, or ``samples``)."""
        return self.kind

    def privacy(self) -> PrivacyStatement:
        if self.declared_privacy.get("epsilon") is None:
            return PrivacyStatement("unknown")
        return PrivacyStatement(
            "declared", epsilon=float(self.declared_privacy["epsilon"]), delta=self.declared_privacy.get("delta")
        )

    def facts(self) -> dict:
        query_set = self.query_set()
        return {
            "victim_run_dir": self.label,
            "data": query_set.name,
            "model": self.model_name(),
            "train_size": int((query_set.labels == 1).sum()),
            **self.privacy().facts(),
            "victim_kind": self.kind,
        }


def check_queries_scale(outputs, queries: Queries, what: str, hint: str) -> None:
    """Refuse a model whose outputs are on another scale than the queries (a wrong declared range)."""
    check_same_scale(outputs, queries.data, what, "the queries", hint)
