"""Behavioural peer groups: principals that do the same kind of work, judged together.

``userIdentity.type`` says how a principal signs in, not what it does: a CSPM scanner, a CI/CD
deploy role and an application's instance role are all ``AssumedRole``. A short history is
better judged against principals that *behave* alike, so each principal gets a group from
its own running baseline (the typical window on the model's ``log1p`` scale), recomputed as
each window is learned: a small deterministic rule set, readable in a finding's explanation.

- ``person``: a person's session (an IAM Identity Center or federated role session, whose
  key names the person after ``#``; a SAML or Identity Center user), or signs in to the
  console (an IAM user);
- ``scanner``: reads many services and API calls per window, (almost) never writes;
- ``deploy``: write-heavy and active for a few hours a day at most (bursty CI/CD);
- ``batch``: active a few hours a day at most, mostly reading (scheduled jobs);
- ``aws-service``: an AWS service acting for the account;
- ``workload``: steady application traffic, everything else;
- ``type:<userIdentity.type>`` until :data:`MIN_GROUP_WINDOWS` windows are known.

Imports: numpy.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

import numpy as np

__all__ = ["GROUPS", "MIN_GROUP_WINDOWS", "assign_group", "type_group"]

MIN_GROUP_WINDOWS: Final = 6  # half an hour of activity before behaviour says anything
GROUPS: Final = ("person", "scanner", "deploy", "batch", "aws-service", "workload")
SCANNER_SERVICES: Final = 4.0  # typical distinct services per window
SCANNER_EVENT_NAMES: Final = 8.0  # typical distinct API calls per window
SCANNER_WRITE_SHARE: Final = 0.05
DEPLOY_WRITE_SHARE: Final = 0.2
BURSTY_WINDOWS_PER_DAY: Final = 36.0  # active for at most three hours a day


def type_group(principal_type: str) -> str:
    return f"type:{principal_type}"


@functools.lru_cache(maxsize=8)
def _stems(names: tuple[str, ...]) -> dict[str, int]:
    return {name.split("_by_principal_", 1)[0]: i for i, name in enumerate(names)}


def _typical(mean: np.ndarray, names: Sequence[str], stem: str) -> float:
    """The typical (geometric-mean) value of a feature per window, 0 when it is not a feature."""
    i = _stems(tuple(names)).get(stem)
    return 0.0 if i is None else float(np.expm1(mean[i]))


# Principal types whose key names a person after "#" (detector.events' principal keys): a
# person works a few hours a day and mostly reads, like a batch job, but is judged with people.
_PERSON_KEYED: Final = frozenset({"AssumedRole", "SAMLUser", "IdentityCenterUser"})


def is_person(principal_type: str, key: str) -> bool:
    """The key itself says a person acts (see :func:`detector.events.principal_of`)."""
    return principal_type in _PERSON_KEYED and "#" in key


def assign_group(
    principal_type: str,
    windows: float,
    days: int,
    mean: np.ndarray,
    names: Sequence[str],
    key: str = "",
) -> str:
    """The group of principal ``key`` with ``windows`` learned over ``days`` active days and
    this running mean (``log1p`` scale, one value per feature of ``names``)."""
    if windows < MIN_GROUP_WINDOWS:
        return type_group(principal_type)
    if principal_type == "AWSService":
        return "aws-service"
    if is_person(principal_type, key) or _typical(mean, names, "console_logins_count") > 0.0:
        return "person"
    calls = max(_typical(mean, names, "calls_count"), 1e-9)
    write_share = _typical(mean, names, "write_calls_count") / calls
    if (
        _typical(mean, names, "services_distinct_count") >= SCANNER_SERVICES
        and _typical(mean, names, "event_names_distinct_count") >= SCANNER_EVENT_NAMES
        and write_share < SCANNER_WRITE_SHARE
    ):
        return "scanner"
    bursty = windows / max(days, 1) <= BURSTY_WINDOWS_PER_DAY
    if bursty and write_share >= DEPLOY_WRITE_SHARE:
        return "deploy"
    if bursty:
        return "batch"
    return "workload"
