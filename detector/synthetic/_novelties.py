"""Benign novelties: new but harmless things an organisation does, labelled so that an
evaluation can count how often they were reported (each such finding is a false one).

- ``benign_batch_peak``: a batch job's month-end Decrypt peak;
- ``benign_new_pipeline``: a CI/CD pipeline's first day.

Labels are :class:`AttackLabel` values without event ids: matched by principal and time.
Imports: the standard library and this package's batch, config, labels, org and pipelines
modules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from detector.synthetic._batch import PEAK_SECONDS
from detector.synthetic._config import SyntheticConfig
from detector.synthetic._formats import DAY
from detector.synthetic._labels import AttackLabel
from detector.synthetic._org import Organisation
from detector.synthetic._pipelines import SESSION_NAME

__all__ = ["benign_novelties"]


def _label(
    sid: str, scenario: str, arn: str, account: str, start: int, end: int, text: str
) -> AttackLabel:
    return AttackLabel(
        scenario_id=sid,
        scenario=scenario,
        technique="benign novelty",
        mitre_attack_id="",
        principal_arn=arn,
        account_id=account,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        event_ids=(),
        description=text,
    )


def benign_novelties(config: SyntheticConfig, org: Organisation) -> tuple[AttackLabel, ...]:
    out = []
    for job in org.batch_jobs:
        t = config.start_epoch + job.peak_day * DAY + job.run_hour * 3600
        out.append(
            _label(
                f"N-batch_peak-{job.name}",
                "benign_batch_peak",
                job.role.session_arn(job.name),
                job.role.account_id,
                t,
                t + PEAK_SECONDS + 600,
                "month-end batch: a Decrypt peak a hundred times the nightly run",
            )
        )
    for pipeline in org.pipelines:
        if pipeline.first_day > 0:
            t = config.start_epoch + pipeline.first_day * DAY
            out.append(
                _label(
                    f"N-new_pipeline-{pipeline.role.name}",
                    "benign_new_pipeline",
                    pipeline.role.session_arn(SESSION_NAME),
                    pipeline.role.account_id,
                    t,
                    t + DAY,
                    "a CI/CD pipeline's first day",
                )
            )
    return tuple(out)
