"""MITRE ATT&CK (Enterprise) names and tactics of the techniques our findings cite.

Findings carry technique ids only (``T1562.008``); OCSF wants names and tactics, and ASFF's
``Types`` are named after the tactic. This table covers the techniques the detections
catalogue cites (a test checks that it does); an id missing here is still reported, by id.

Imports: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["ATTACK_VERSION", "Tactic", "Technique", "technique"]

ATTACK_VERSION: Final = "16"


@dataclass(frozen=True, slots=True)
class Tactic:
    uid: str
    name: str


@dataclass(frozen=True, slots=True)
class Technique:
    uid: str
    name: str
    tactics: tuple[Tactic, ...]

    @property
    def parent(self) -> str:
        """``T1562`` for ``T1562.008``; the id itself for a technique."""
        return self.uid.partition(".")[0]

    @property
    def url(self) -> str:
        return "https://attack.mitre.org/techniques/" + self.uid.replace(".", "/") + "/"


INITIAL_ACCESS: Final = Tactic("TA0001", "Initial Access")
EXECUTION: Final = Tactic("TA0002", "Execution")
PERSISTENCE: Final = Tactic("TA0003", "Persistence")
PRIVILEGE_ESCALATION: Final = Tactic("TA0004", "Privilege Escalation")
DEFENSE_EVASION: Final = Tactic("TA0005", "Defense Evasion")
CREDENTIAL_ACCESS: Final = Tactic("TA0006", "Credential Access")
LATERAL_MOVEMENT: Final = Tactic("TA0008", "Lateral Movement")
COLLECTION: Final = Tactic("TA0009", "Collection")
EXFILTRATION: Final = Tactic("TA0010", "Exfiltration")
IMPACT: Final = Tactic("TA0040", "Impact")

_TECHNIQUES: Final = {
    t.uid: t
    for t in (
        Technique(
            "T1078.004",
            "Valid Accounts: Cloud Accounts",
            (DEFENSE_EVASION, PERSISTENCE, PRIVILEGE_ESCALATION, INITIAL_ACCESS),
        ),
        Technique("T1098", "Account Manipulation", (PERSISTENCE, PRIVILEGE_ESCALATION)),
        Technique(
            "T1098.001",
            "Account Manipulation: Additional Cloud Credentials",
            (PERSISTENCE, PRIVILEGE_ESCALATION),
        ),
        Technique(
            "T1098.003",
            "Account Manipulation: Additional Cloud Roles",
            (PERSISTENCE, PRIVILEGE_ESCALATION),
        ),
        Technique("T1059.009", "Command and Scripting Interpreter: Cloud API", (EXECUTION,)),
        Technique("T1110", "Brute Force", (CREDENTIAL_ACCESS,)),
        Technique("T1110.001", "Brute Force: Password Guessing", (CREDENTIAL_ACCESS,)),
        Technique("T1110.003", "Brute Force: Password Spraying", (CREDENTIAL_ACCESS,)),
        Technique("T1485", "Data Destruction", (IMPACT,)),
        Technique("T1490", "Inhibit System Recovery", (IMPACT,)),
        Technique("T1496", "Resource Hijacking", (IMPACT,)),
        Technique("T1525", "Implant Internal Image", (PERSISTENCE,)),
        Technique("T1530", "Data from Cloud Storage", (COLLECTION,)),
        Technique("T1535", "Unused/Unsupported Cloud Regions", (DEFENSE_EVASION,)),
        Technique("T1537", "Transfer Data to Cloud Account", (EXFILTRATION,)),
        Technique(
            "T1550.001",
            "Use Alternate Authentication Material: Application Access Token",
            (DEFENSE_EVASION, LATERAL_MOVEMENT),
        ),
        Technique("T1552.001", "Unsecured Credentials: Credentials In Files", (CREDENTIAL_ACCESS,)),
        Technique(
            "T1552.005",
            "Unsecured Credentials: Cloud Instance Metadata API",
            (CREDENTIAL_ACCESS,),
        ),
        Technique(
            "T1555.006",
            "Credentials from Password Stores: Cloud Secrets Management Stores",
            (CREDENTIAL_ACCESS,),
        ),
        Technique("T1562", "Impair Defenses", (DEFENSE_EVASION,)),
        Technique("T1562.001", "Impair Defenses: Disable or Modify Tools", (DEFENSE_EVASION,)),
        Technique(
            "T1562.007", "Impair Defenses: Disable or Modify Cloud Firewall", (DEFENSE_EVASION,)
        ),
        Technique("T1562.008", "Impair Defenses: Disable or Modify Cloud Logs", (DEFENSE_EVASION,)),
        Technique("T1666", "Modify Cloud Resource Hierarchy", (DEFENSE_EVASION,)),
    )
}


def technique(uid: str) -> Technique:
    """The technique ``uid``; one not in the table keeps its id, with no name or tactic."""
    return _TECHNIQUES.get(uid) or Technique(uid, "", ())
