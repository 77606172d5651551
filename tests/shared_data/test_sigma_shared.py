"""SigmaHQ's CloudTrail rules (../shared/data/sigma-cloudtrail, read there, never copied):
every rule compiles or is refused with a reason; each compiled rule fires on the positive
example made from its own condition and not on the negative, alone and beside all the others;
docs/sigma.md lists what compiles and what not, as the compiler says today.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detector.detections import Detection, DetectionConfig, DetectionState, run_detections
from detector.events import records_to_events
from detector.sigma import KIND_PREFIX, SigmaRules, load_rules, rules_table
from tests.conftest import REPO_ROOT, load_stratus

NOW = datetime(2024, 5, 1, 13, tzinfo=UTC)
SIGMAHQ_CLOUDTRAIL_RULES = 57  # the count at the commit recorded in the folder's README


@pytest.fixture(scope="module")
def sigmahq(shared_data: Path) -> SigmaRules:
    folder = shared_data / "sigma-cloudtrail"
    if not folder.is_dir():
        pytest.skip(f"SigmaHQ rules not present at {folder}")
    return asyncio.run(load_rules([str(folder)]))


def kinds(detections: tuple[Detection, ...], records: list[object]) -> set[str]:
    events = records_to_events(records, origin="examples").events
    _, found = run_detections(events, detections, DetectionState(), DetectionConfig(), NOW)
    return {f.kind for f in found}


def test_every_rule_compiles_or_is_refused_with_a_reason(sigmahq: SigmaRules) -> None:
    assert len(sigmahq.detections) + len(sigmahq.refused) == SIGMAHQ_CLOUDTRAIL_RULES
    assert sigmahq.other_logsource == 0
    for refusal in sigmahq.refused:
        assert refusal.rule_id
        assert refusal.reason
    assert all(d.id.startswith(KIND_PREFIX) for d in sigmahq.detections)


def test_each_compiled_rule_fires_on_its_positive_and_not_its_negative(
    sigmahq: SigmaRules,
) -> None:
    wrong = []
    for detection in sigmahq.detections:
        fired = [bool(kinds((detection,), list(p))) for p in detection.positives]
        quiet = [not kinds((detection,), list(n)) for n in detection.negatives]
        if not (all(fired) and all(quiet)):
            wrong.append(sigmahq.sources[detection.id])
    assert not wrong


def test_all_rules_together_find_each_positive_under_its_own_kind(sigmahq: SigmaRules) -> None:
    """Run side by side (as the service does), each rule still reports its own positive: one
    rule's pre-selection or dedup does not hide another's."""
    detections = sigmahq.detections
    for detection in detections:
        assert detection.id in kinds(detections, list(detection.positives[0]))


def test_docs_list_which_rules_compile_and_why_the_others_do_not(sigmahq: SigmaRules) -> None:
    docs = (REPO_ROOT / "docs" / "sigma.md").read_text()
    assert rules_table(sigmahq) in docs, (
        "docs/sigma.md is out of date: regenerate its table with "
        "`python -m detector.sigma ../shared/data/sigma-cloudtrail`"
    )


# Stratus Red Team detonations a SigmaHQ rule is about -> that rule's file (as run today: the
# rule must find its detonation in the real records).
STRATUS_FOUND_BY_SIGMAHQ = {
    "aws.execution.ssm-send-command": "aws_cloudtrail_ssm_malicious_usage.yml",
    "aws.initial-access.console-login-without-mfa": (
        "aws_cloudtrail_console_login_success_without_mfa.yml"
    ),
    "aws.persistence.iam-backdoor-user": "aws_iam_backdoor_users_keys.yml",
    "aws.persistence.lambda-layer-extension": "aws_new_lambda_layer_attached.yml",
}


@pytest.mark.parametrize("technique", sorted(STRATUS_FOUND_BY_SIGMAHQ))
def test_sigmahq_rules_find_real_detonations(
    sigmahq: SigmaRules, shared_data: Path, technique: str
) -> None:
    path = shared_data / "stratus-red-team" / f"{technique}.json"
    if not path.is_file():
        pytest.skip(f"no detonation log {path.name}")
    records = load_stratus(path)
    by_file = {Path(source).name: kind for kind, source in sigmahq.sources.items()}
    assert by_file[STRATUS_FOUND_BY_SIGMAHQ[technique]] in kinds(sigmahq.detections, records)
