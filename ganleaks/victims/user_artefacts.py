"""What every victim the user brings shares: its queries are the user's member and non-member records.

A user's generator or sample set has no membership split of ours: its queries are the user's own
records (``queries.*``: image folders, arrays or CSV files, loaded by
:mod:`ganleaks.data.user_sets`, or a :class:`~ganleaks.data.user_sets.QuerySet` given in Python).
Their ids are the user's strings (paths, row numbers, an id column); the engines and batch files
key them by :func:`~ganleaks.data.user_sets.stable_key`, and ``scores.csv`` shows the strings.
Nobody here knows how the user's model was trained: its privacy statement is "unknown", or
"declared" when the user states a budget (``victim.privacy.epsilon``), which nothing here checks.
A setting that divides by a density of real data (``needs_reference_records``: DOMIAS) reads the
user's reference records (``queries.reference``), loaded like the queries and refused when they
share a record with them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ganleaks.data.queries import Queries, choose_queries
from ganleaks.data.user_sets import QuerySet, Records, check_same_scale, load_query_set, load_records, shared_records
from ganleaks.errors import AttackConfigError, missing_key_message
from ganleaks.victims.base import PrivacyStatement, Victim, sha256_tensors

log = logging.getLogger(__name__)

#: What ``queries.reference`` must hold, for messages.
REFERENCE_RECORDS = (
    "real records of the queries' distribution that are neither members nor non-members (an image folder, a "
    ".npy/.npz array or a .csv file, read with the same queries.* options as the queries)"
)


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
        self._reference: Records | None = None

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

    # ------------------------------------------------------------------ reference records

    def reference_path(self) -> str | None:
        """``queries.reference``: where the user's reference records are (None: not given)."""
        source = self.query_source
        if isinstance(source, QuerySet) or source is None:
            return None
        path = dict(source).get("reference")
        return None if path is None else str(path)

    def offered_reference(self) -> frozenset[str]:
        """``{"reference records"}`` when the user gave them (``queries.reference``), for :meth:`offers`."""
        return frozenset({"reference records"}) if self.reference_path() is not None else frozenset()

    def reference_hint(self) -> str:
        return f"{missing_key_message('queries.reference')}: {REFERENCE_RECORDS}"

    def check_reference(self, setting_class: type, queries: Queries) -> None:
        """For a setting that reads reference records: load and check them now, before any network loads."""
        if getattr(setting_class, "needs_reference_records", False):
            self.reference_records(queries)

    def reference_records(self, queries: Queries) -> Tensor:
        """``queries.reference``, loaded once with the queries' options; refused when it shares a record with
        the query files (by content: such a record would sit in p_R's data and be asked about)."""
        if self._reference is None:
            path = self.reference_path()
            if path is None:
                raise AttackConfigError(self.reference_hint())
            q = dict(self.query_source or {})  # type: ignore[arg-type]  # a mapping: reference_path() found it
            records = load_records(
                path,
                resolution=q.get("resolution"),
                channels=q.get("channels"),
                value_range=None if q.get("value_range") is None else list(q["value_range"]),
                id_column=q.get("id_column"),
                what="queries.reference",
                options="queries",
            )
            if records.shape != queries.shape or records.kind != queries.sample_set.kind:
                raise AttackConfigError(
                    f"queries.reference={path} holds {records.kind} records of shape {records.shape}, the queries are "
                    f"{queries.sample_set.kind} of shape {queries.shape}: bring reference records like the queries "
                    "(same file type and size; queries.resolution and queries.channels apply to both)"
                )
            check_same_scale(
                records.data,
                queries.sample_set.data,
                f"queries.reference={path}",
                "the queries",
                "Save the reference records with the same scaling as the queries (queries.value_range applies to all).",
            )
            query_set = self.query_set()  # every query record, in the order of queries.sample_set
            allow_identical = bool(q.get("allow_identical", False))
            self._reference = _disjoint_reference(records, query_set.data, query_set.ids, allow_identical)
        return self._reference.data

    def reference_identity(self, setting_class: type) -> dict:
        """The reference records' contents, for :meth:`identity` (empty unless the setting reads them)."""
        if self._reference is None or not getattr(setting_class, "needs_reference_records", False):
            return {}
        return {"reference_records": sha256_tensors([("reference", self._reference.data)])}

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


def _disjoint_reference(records: Records, query_data: Tensor, query_names: list[str], allow_identical: bool) -> Records:
    """``records`` unless one of them is a query record (identical content, constant records left out).

    Images: any shared record is refused. Tabular rows can coincide by chance (binary codes): with
    ``queries.allow_identical=true`` a shared row is a warning, as it is between the query sets.
    """
    pairs = shared_records(records.data, query_data)
    if not pairs:
        return records
    said = (
        f"queries.reference={records.path} shares {len(pairs)} of its {len(records)} records with the query records "
        f"(identical content; e.g. its {records.ids[pairs[0][0]]} is the query {query_names[pairs[0][1]]})"
    )
    tabular = records.kind == "tabular"
    if tabular and allow_identical:
        log.warning("%s; queries.allow_identical=true accepts them as distinct rows that happen to be equal", said)
        return records
    raise AttackConfigError(
        f"{said}: the reference data must be disjoint from the queries (a query in it is its own reference, and "
        "its density ratio says nothing about membership). Remove them from the reference records"
        + (", or set queries.allow_identical=true if they are distinct rows that happen to be equal" if tabular else "")
    )


def check_queries_scale(outputs, queries: Queries, what: str, hint: str) -> None:
    """Refuse a model whose outputs are on another scale than the queries (a wrong declared range)."""
    check_same_scale(outputs, queries.data, what, "the queries", hint)
