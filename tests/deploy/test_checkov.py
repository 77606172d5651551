"""checkov over everything deploy/ ships: no failed check, and no skip without its reason.

Skips are written beside what they excuse (a ``checkov:skip=`` comment in a template, a
``checkov.io/skipN`` annotation on a manifest) and listed here, so a new one is a deliberate
change that a reviewer sees; deploy/README.md lists them with their reasons too.
"""

from __future__ import annotations

from .conftest import CHECKOV_FRAMEWORKS, CheckovReport

EXPECTED_SKIPS = {
    # SSE-SQS on the member accounts' forwarding DLQ: EventBridge cannot use aws/sqs.
    ("cloudformation", "CKV_AWS_27", "AWS::SQS::Queue.ForwardDeadLetterQueue"),
    # No server access logs on the state bucket: one role uses it, every object is SSE-KMS (each
    # use a KMS event in CloudTrail), and a log bucket would need its own log bucket.
    ("cloudformation", "CKV_AWS_18", "AWS::S3::Bucket.StateBucket"),
    # Image digests are set at release time, not in git.
    ("kubernetes", "CKV_K8S_43", "Deployment.cloudtrail-detector-dev.detector"),
    ("kubernetes", "CKV_K8S_43", "Deployment.cloudtrail-detector.detector"),
}


def test_checkov_scanned_every_framework(checkov_report: CheckovReport) -> None:
    assert set(checkov_report.resource_count) == set(CHECKOV_FRAMEWORKS)
    assert all(count > 0 for count in checkov_report.resource_count.values()), (
        checkov_report.resource_count
    )
    assert checkov_report.parsing_errors == []


def test_checkov_has_no_failed_check(checkov_report: CheckovReport) -> None:
    failures = [f"{item.check_id} {item.resource} ({item.file})" for item in checkov_report.failed]
    assert failures == [], "\n".join(failures)


def test_every_checkov_skip_is_expected_and_explained(checkov_report: CheckovReport) -> None:
    skips = {(item.framework, item.check_id, item.resource) for item in checkov_report.skipped}
    assert skips == EXPECTED_SKIPS
    for item in checkov_report.skipped:
        assert len(item.suppress_comment) >= 40, f"{item.check_id}: give the reason in full"
