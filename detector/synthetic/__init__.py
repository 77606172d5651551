"""Synthetic CloudTrail traffic of a small AWS organisation, with labelled attacks.

For tests, the demo, notebooks and benchmarks. Deterministic by seed: the same
``(config, seed)`` gives byte-identical records, archives, streams and labels.

Generate (pure, in memory)::

    trail = generate(SyntheticConfig(baseline_days=7, attack_days=1), seed=42)
    trail.records   # raw CloudTrail record dicts, in event-time order
    trail.labels    # one AttackLabel per injected scenario (eventIDs of malicious records)
    trail.novelties # benign novelties (a batch job's monthly peak, a new pipeline)

or an organisation of a named shape (``startup``, ``enterprise``, ``saas-ci-heavy``, ...)::

    trail = generate(shape_config("enterprise"), seed=1)

or stream millions of records without holding them::

    config = SyntheticConfig().with_events_per_day(500_000)
    for record in itertools.islice(iter_records(config, seed=1), 1_000_000):
        ...

Write (I/O at the edge)::

    org_id = build_organisation(config, 1).org_id  # for the organization trail layout
    write_archive(iter_records(config, 1), "out/archive", seed=1, organization_id=org_id)
    write_envelopes(iter_records(config, 1), "out/envelopes.jsonl", seed=1)  # or .jsonl.gz
    write_labels(attack_labels(config, 1), "out/labels.json")

or ``python -m detector.synthetic --out DIR --seed N --days D``.

Imports: the standard library, numpy, orjson and :mod:`detector.errors`; nothing else of the
detector, so every stage can be tested against it.
"""

from detector.synthetic._config import (
    ALL_SCENARIOS,
    DEFAULT_APP_CALLS_PER_INSTANCE_HOUR,
    DEFAULT_APPS,
    DEFAULT_ATTACK_DAYS,
    DEFAULT_BASELINE_DAYS,
    DEFAULT_ERROR_RATE,
    DEFAULT_IAM_USERS,
    DEFAULT_INSTANCES_PER_APP,
    DEFAULT_PEOPLE,
    DEFAULT_PIPELINES,
    DEFAULT_REGIONS,
    DEFAULT_START,
    DEFAULT_TRAVEL_PROBABILITY,
    DEFAULT_WORKLOAD_ACCOUNTS,
    MISSED_SCENARIOS,
    SCENARIOS,
    SyntheticConfig,
)
from detector.synthetic._delivery import LogFile, envelope, plan_envelopes, plan_log_files
from detector.synthetic._generate import (
    SyntheticTrail,
    attack_labels,
    generate,
    iter_days,
    iter_records,
    novelty_labels,
)
from detector.synthetic._labels import AttackLabel, labels_from_json, labels_to_json
from detector.synthetic._org import Organisation, build_organisation
from detector.synthetic._shapes import (
    DEVELOPMENT_SEEDS,
    DEVELOPMENT_SHAPES,
    HELD_BACK_SEEDS,
    HELD_BACK_SHAPES,
    SHAPES,
    shape_config,
)
from detector.synthetic._writers import (
    ArchiveSummary,
    log_file_key,
    read_labels,
    write_archive,
    write_envelopes,
    write_labels,
)

__all__ = [
    "ALL_SCENARIOS",
    "DEFAULT_APPS",
    "DEFAULT_APP_CALLS_PER_INSTANCE_HOUR",
    "DEFAULT_ATTACK_DAYS",
    "DEFAULT_BASELINE_DAYS",
    "DEFAULT_ERROR_RATE",
    "DEFAULT_IAM_USERS",
    "DEFAULT_INSTANCES_PER_APP",
    "DEFAULT_PEOPLE",
    "DEFAULT_PIPELINES",
    "DEFAULT_REGIONS",
    "DEFAULT_START",
    "DEFAULT_TRAVEL_PROBABILITY",
    "DEFAULT_WORKLOAD_ACCOUNTS",
    "DEVELOPMENT_SEEDS",
    "DEVELOPMENT_SHAPES",
    "HELD_BACK_SEEDS",
    "HELD_BACK_SHAPES",
    "MISSED_SCENARIOS",
    "SCENARIOS",
    "SHAPES",
    "ArchiveSummary",
    "AttackLabel",
    "LogFile",
    "Organisation",
    "SyntheticConfig",
    "SyntheticTrail",
    "attack_labels",
    "build_organisation",
    "envelope",
    "generate",
    "iter_days",
    "iter_records",
    "labels_from_json",
    "labels_to_json",
    "log_file_key",
    "novelty_labels",
    "plan_envelopes",
    "plan_log_files",
    "read_labels",
    "shape_config",
    "write_archive",
    "write_envelopes",
    "write_labels",
]
