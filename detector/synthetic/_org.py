"""The synthetic organisation: accounts, people, legacy users, pipelines and applications.

:func:`build_organisation` draws everything that stays fixed for the whole period from the
seed: account ids, who works where and when, each person's addresses and planned trips, the
CI runners, each application's resources, VPC endpoints and the life of every instance or
task (when it starts, when autoscaling or a deploy replaces it). Traffic generators read this
value; they never change it.

Imports: the standard library and this package's :mod:`._config`, :mod:`._formats`,
:mod:`._identity` and :mod:`._catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from random import Random
from typing import Final, Literal

from detector.synthetic._catalog import PEOPLE_SERVICES, Resources
from detector.synthetic._config import SyntheticConfig
from detector.synthetic._formats import (
    DAY,
    aws_id,
    derived_aws_id,
    derived_hex,
    hex_string,
    lower_alnum,
    private_ipv4,
    public_ipv4,
    uuid4,
)
from detector.synthetic._identity import IamUser, Role

AppKind = Literal["ec2", "ecs", "lambda"]
APP_KINDS: Final[tuple[AppKind, ...]] = ("ec2", "ecs", "lambda")
PERMISSION_SETS: Final = (
    "AdministratorAccess",
    "PowerUserAccess",
    "DeveloperAccess",
    "ReadOnlyAccess",
)
ENDPOINT_SERVICES: Final = ("kms", "sqs", "s3", "dynamodb", "secretsmanager", "sts", "logs")
EMAIL_DOMAIN: Final = "example.com"
GITHUB_ORG: Final = "acme"

_FIRST: Final = (
    "alice", "bruno", "chen", "dana", "emeka", "fatima", "gustav", "hana", "ivan", "julia",
    "kofi", "lena", "mateo", "nora", "omar", "priya", "quentin", "rosa", "sven", "tariq",
    "uma", "victor", "wen", "ximena", "yusuf", "zoe",
)  # fmt: skip
_LAST: Final = (
    "adams", "berg", "costa", "diaz", "evans", "fischer", "garcia", "haddad", "ito", "jensen",
    "khan", "larsen", "moreau", "nakamura", "okafor", "petrov", "quinn", "rossi", "silva",
    "tanaka", "ueda", "varga", "weber", "xu", "yilmaz", "zhou",
)  # fmt: skip
_WORKLOAD_NAMES: Final = ("prod", "staging", "data", "shared-services", "sandbox", "analytics")
_APP_NAMES: Final = (
    "orders-api", "payments-worker", "thumbnailer", "ledger", "notifications", "search-indexer",
    "billing-sync", "inventory", "audit-export", "pricing", "checkout", "recommendations",
)  # fmt: skip
_BROWSERS: Final = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.3; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Safari/605.1.15",
)
_CLIS: Final = (
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.3.0 exe/x86_64 prompt/off",
    "aws-cli/2.15.21 Python/3.11.6 Darwin/23.2.0 exe/arm64 prompt/off",
    "aws-cli/2.13.25 Python/3.11.5 Linux/6.5.0-21-generic exe/x86_64.ubuntu.22 prompt/off",
    "aws-cli/2.17.3 Python/3.11.9 Windows/10 exe/AMD64 prompt/off",
)
_SDK_AGENTS: Final = (
    "aws-sdk-java/2.20.162 Linux/5.10.205-195.807.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/"
    "17.0.9+8-LTS Java/17.0.9 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
    "Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#5.10.205-195.807.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.11.6 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.0",
    "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64",
    "aws-sdk-js/3.470.0 ua/2.0 os/linux#5.10.205-216.806.amzn2.x86_64 lang/js md/nodejs#20.10.0 "
    "exec-env/AWS_Lambda_nodejs20.x",
)
TERRAFORM_AGENT: Final = (
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/"
    "5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.3 "
    "os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64"
)
CREDENTIALS_ACTION_AGENT: Final = (
    "aws-sdk-js/3.535.0 ua/2.0 os/linux#6.5.0-1016-azure lang/js md/nodejs#20.11.1 "
    "api/sts#3.535.0 configure-aws-credentials-for-github-actions"
)
# Offices: (UTC offset in hours, number of egress addresses).
_OFFICES: Final = ((1.0, 2), (-5.0, 2))
_REMOTE_OFFSETS: Final = (-8.0, -6.0, 0.0, 2.0, 5.5)


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    name: str


@dataclass(frozen=True, slots=True)
class SsoAssignment:
    """A permission set in one account: the ``AWSReservedSSO_*`` role a person works as."""

    role: Role
    permission_set: str


@dataclass(frozen=True, slots=True)
class Trip:
    """Days (indices from the start) a person works from a new address in another country."""

    first_day: int
    last_day: int
    ip: str


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    utc_offset: int  # seconds east of UTC
    home_ips: tuple[str, ...]
    office_ips: tuple[str, ...]  # empty for people who work remotely
    browser_agent: str
    cli_agent: str
    console_share: float  # fraction of sessions in the console rather than the CLI
    services: tuple[str, ...]
    assignments: tuple[SsoAssignment, ...]
    trips: tuple[Trip, ...]
    sessions_per_day: float
    writes: bool  # whether any permission set lets them change things

    def trip_on(self, day: int) -> Trip | None:
        for trip in self.trips:
            if trip.first_day <= day <= trip.last_day:
                return trip
        return None


@dataclass(frozen=True, slots=True)
class LegacyUser:
    """An IAM user with a long-lived key: a script on a fixed host, a break-glass human, or a
    person who signs in to the console every working day without MFA."""

    user: IamUser
    kind: Literal["script", "human", "console"]
    ip: str
    agent: str
    run_hours: tuple[int, ...]  # UTC hours a script runs
    weekdays_only: bool
    mfa_serial: str


@dataclass(frozen=True, slots=True)
class CiPipeline:
    """A GitHub Actions workflow deploying one application through an OIDC role."""

    repo: str
    role: Role
    runner_ips: tuple[str, ...]
    app_index: int
    runs_per_weekday: float
    first_day: int = 0  # day index of its first run (a pipeline new in the period)


@dataclass(frozen=True, slots=True)
class Incarnation:
    """One EC2 instance, ECS task or Lambda execution environment: its session and address."""

    session_name: str
    private_ip: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class App:
    name: str
    kind: AppKind
    role: Role
    resources: Resources
    agent: str
    endpoints: dict[str, str]  # service -> vpce id, in the app's account and region
    op_weights: tuple[float, ...]  # over ``_apps.APP_OPERATIONS``
    peak_hour: int  # UTC hour of the daily peak
    slots: tuple[tuple[Incarnation, ...], ...]  # concurrent instances, each a timeline
    nat_ip: str | None = None  # calls leave through this NAT gateway address, no endpoints
    rate_factor: float = 1.0  # call rate as a multiple of the configured one

    @property
    def account(self) -> str:
        return self.resources.account

    @property
    def region(self) -> str:
        return self.resources.region


@dataclass(frozen=True, slots=True)
class Scanner:
    """A cloud security posture (CSPM) product: a role in every account that reads every API
    of every service in every region, every ``every_hours`` hours, from the vendor's IPs."""

    name: str
    roles: tuple[Role, ...]  # one per account
    ips: tuple[str, ...]
    agent: str
    every_hours: int
    offset: int  # seconds after midnight of the first scan


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A nightly job with a monthly peak: on ``peak_day`` it decrypts far more than usual
    (month-end processing), which is benign and labelled as a novelty."""

    name: str
    role: Role
    resources: Resources
    private_ip: str
    vpce: str | None
    agent: str
    run_hour: int
    peak_day: int  # day index from the start of the period


@dataclass(frozen=True, slots=True)
class Organisation:
    org_id: str
    management: Account
    workloads: tuple[Account, ...]
    regions: tuple[str, ...]
    people: tuple[Person, ...]
    legacy_users: tuple[LegacyUser, ...]
    pipelines: tuple[CiPipeline, ...]
    apps: tuple[App, ...]
    trail_name: str
    trail_bucket: str
    scanners: tuple[Scanner, ...] = ()
    batch_jobs: tuple[BatchJob, ...] = ()

    @property
    def accounts(self) -> tuple[Account, ...]:
        return (self.management, *self.workloads)

    def service_role(self, account_id: str, service: str, name: str) -> Role:
        """A service-linked role (``/aws-service-role/<service>/``); its id is derived."""
        role_id = derived_aws_id("AROA", self.org_id, account_id, name, length=17)
        return Role(account_id, name, role_id, f"/aws-service-role/{service}/")

    def account_resources(self, account_id: str, region: str) -> Resources:
        """Resources an account has in a region: an app's, or a placeholder set."""
        for app in self.apps:
            if app.account == account_id and app.region == region:
                return app.resources
        key_id = "00000000-0000-4000-8000-" + account_id
        return Resources(account_id, region, "platform", key_id, "i-0" + account_id + "0000")


def build_organisation(config: SyntheticConfig, seed: int) -> Organisation:
    """Draw the fixed facts of the organisation from ``seed``."""
    rng = Random(f"{seed}/organisation")
    org_id = "o-" + lower_alnum(rng, 10)
    accounts = _accounts(rng, config.workload_accounts)
    management, workloads = accounts[0], accounts[1:]
    apps = tuple(_app(rng, seed, index, workloads, config) for index in range(config.apps))
    people = tuple(_people(rng, config, accounts))
    legacy = tuple(_legacy_user(rng, i, accounts) for i in range(config.iam_users))
    pipelines = tuple(_pipeline(rng, i, apps, workloads) for i in range(config.pipelines))
    bucket = f"aws-cloudtrail-logs-{management.account_id}-{hex_string(rng, 8)}"
    # The shape's actors draw from their own stream: without them the organisation is the
    # same as it always was for a seed.
    shape = Random(f"{seed}/organisation/shape")
    apps += tuple(
        _data_app(shape, seed, config.apps + i, workloads, config) for i in range(config.data_apps)
    )
    apps = _with_nat(shape, apps, config.nat_share)
    legacy += tuple(_console_user(shape, i, accounts) for i in range(config.mfa_less_users))
    pipelines += tuple(
        _new_pipeline(shape, i, apps, workloads, config) for i in range(config.new_pipelines)
    )
    return Organisation(
        org_id=org_id,
        management=management,
        workloads=tuple(workloads),
        regions=config.regions,
        people=people,
        legacy_users=legacy,
        pipelines=pipelines,
        apps=apps,
        trail_name="org-trail",
        trail_bucket=bucket,
        scanners=tuple(_scanner(shape, i, accounts) for i in range(config.scanners)),
        batch_jobs=tuple(
            _batch_job(shape, seed, i, workloads, config) for i in range(config.batch_jobs)
        ),
    )


_SCANNER_AGENTS: Final = (
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#5.10.210-201.852.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard "
    "Botocore/1.34.51 wiz-scanner",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0 md/GOOS#linux md/GOARCH#amd64 "
    "api/securityposture prismacloud",
)
_BATCH_AGENT: Final = (
    "aws-sdk-java/2.25.11 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7 "
    "Java/17.0.10 vendor/Amazon.com_Inc. exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode/legacy"
)


def _scanner(rng: Random, index: int, accounts: list[Account]) -> Scanner:
    name = f"cspm-scanner-{index}" if index else "cspm-scanner"
    return Scanner(
        name=name,
        roles=tuple(
            Role(a.account_id, f"{name}-audit-role", aws_id(rng, "AROA", 17)) for a in accounts
        ),
        ips=tuple(public_ipv4(rng) for _ in range(rng.randrange(2, 5))),
        agent=_SCANNER_AGENTS[index % len(_SCANNER_AGENTS)],
        every_hours=rng.choice((4, 6, 8)),
        offset=rng.randrange(0, 3600),
    )


def _data_app(
    rng: Random, seed: int, index: int, workloads: list[Account], config: SyntheticConfig
) -> App:
    app = _app(rng, seed, index, workloads, config)
    # Decrypt, GenerateDataKey, Send, Receive, Delete, GetObject, PutObject, GetItem, PutItem,
    # GetSecretValue: nearly all S3 object calls (data events).
    weights = (0.04, 0.02, 0.0, 0.0, 0.0, 0.6, 0.3, 0.02, 0.02, 0.002)
    return replace(
        app,
        name=f"{app.name}-data",
        kind="ecs" if app.kind == "lambda" else app.kind,
        op_weights=weights,
        rate_factor=config.data_app_rate,
    )


def _with_nat(rng: Random, apps: tuple[App, ...], share: float) -> tuple[App, ...]:
    """Applications behind a NAT gateway: one public address per account and region."""
    if share <= 0:
        return apps
    gateways: dict[tuple[str, str], str] = {}
    out = []
    for app in apps:
        if app.kind != "lambda" and rng.random() < share:
            ip = gateways.setdefault((app.account, app.region), public_ipv4(rng))
            app = replace(app, nat_ip=ip)
        out.append(app)
    return tuple(out)


def _console_user(rng: Random, index: int, accounts: list[Account]) -> LegacyUser:
    account = accounts[(index + 1) % len(accounts)]
    name = f"ops-console-{index}"
    user = IamUser(account.account_id, name, aws_id(rng, "AIDA", 17), aws_id(rng, "AKIA"))
    return LegacyUser(
        user=user,
        kind="console",
        ip=public_ipv4(rng),
        agent=rng.choice(_BROWSERS),
        run_hours=(rng.randrange(7, 11),),
        weekdays_only=True,
        mfa_serial="",
    )


def _new_pipeline(
    rng: Random,
    index: int,
    apps: tuple[App, ...],
    workloads: list[Account],
    config: SyntheticConfig,
) -> CiPipeline:
    base = _pipeline(rng, 1000 + index, apps, workloads)
    name = f"gha-{base.repo.rsplit('/', 1)[1]}-{index}"
    first = max(1, config.days // 2)
    return replace(
        base,
        repo=f"{GITHUB_ORG}/{name}",
        role=Role(base.role.account_id, name, aws_id(rng, "AROA", 17)),
        first_day=rng.randrange(first, max(first + 1, config.days)),
    )


def _batch_job(
    rng: Random, seed: int, index: int, workloads: list[Account], config: SyntheticConfig
) -> BatchJob:
    account = workloads[index % len(workloads)].account_id
    region = config.regions[0]
    name = f"month-end-batch-{index}"
    vpc_prefix = f"10.{int(derived_hex(4, seed, account, region), 16) % 250}"
    first = max(1, config.days // 2)
    return BatchJob(
        name=name,
        role=Role(account, f"{name}-task-role", aws_id(rng, "AROA", 17)),
        resources=Resources(account, region, name, uuid4(rng), "i-0" + hex_string(rng, 16)),
        private_ip=private_ipv4(rng, vpc_prefix),
        vpce="vpce-" + derived_hex(17, seed, account, region, "kms"),
        agent=_BATCH_AGENT,
        run_hour=rng.randrange(0, 5),
        peak_day=rng.randrange(first, max(first + 1, config.days)),
    )


def _accounts(rng: Random, workloads: int) -> list[Account]:
    ids: list[str] = []
    while len(ids) < workloads + 1:
        candidate = f"{rng.randrange(10**11, 10**12):012d}"
        if candidate not in ids:
            ids.append(candidate)
    names = ["management"] + [
        _WORKLOAD_NAMES[i % len(_WORKLOAD_NAMES)] + ("" if i < len(_WORKLOAD_NAMES) else f"-{i}")
        for i in range(workloads)
    ]
    return [Account(account_id, name) for account_id, name in zip(ids, names, strict=True)]


def _sso_role(rng: Random, account: Account, permission_set: str, suffixes: dict[str, str]) -> Role:
    # One hex suffix per permission set and account, as IAM Identity Center provisions it.
    key = f"{account.account_id}/{permission_set}"
    if key not in suffixes:
        suffixes[key] = hex_string(rng, 16)
    name = f"AWSReservedSSO_{permission_set}_{suffixes[key]}"
    role_id = derived_aws_id("AROA", name, account.account_id, length=17)
    return Role(account.account_id, name, role_id, "/aws-reserved/sso.amazonaws.com/")


def _people(rng: Random, config: SyntheticConfig, accounts: list[Account]) -> list[Person]:
    suffixes: dict[str, str] = {}
    offices = [(offset, tuple(public_ipv4(rng) for _ in range(n))) for offset, n in _OFFICES]
    admins = max(1, config.people // 8)
    people = []
    for index in range(config.people):
        first, last = _FIRST[index % len(_FIRST)], _LAST[(index * 7) % len(_LAST)]
        suffix = "" if index < len(_FIRST) else str(index // len(_FIRST))
        if rng.random() < 0.75:
            offset, office_ips = offices[index % len(offices)]
        else:
            offset, office_ips = rng.choice(_REMOTE_OFFSETS), ()
        assignments = _assignments(rng, index < admins, accounts, suffixes)
        people.append(
            Person(
                email=f"{first}.{last}{suffix}@{EMAIL_DOMAIN}",
                utc_offset=int(offset * 3600),
                home_ips=tuple(public_ipv4(rng) for _ in range(rng.choice((1, 2)))),
                office_ips=office_ips,
                browser_agent=rng.choice(_BROWSERS),
                cli_agent=rng.choice(_CLIS),
                console_share=rng.choice((0.2, 0.5, 0.8)),
                services=tuple(rng.sample(PEOPLE_SERVICES, rng.randrange(3, 7))),
                assignments=assignments,
                trips=_trips(rng, config),
                sessions_per_day=rng.uniform(1.0, 3.0),
                writes=any(a.permission_set != "ReadOnlyAccess" for a in assignments),
            )
        )
    return people


def _assignments(
    rng: Random, admin: bool, accounts: list[Account], suffixes: dict[str, str]
) -> tuple[SsoAssignment, ...]:
    if admin:
        # Admins can work anywhere; the management account comes first.
        return tuple(
            SsoAssignment(_sso_role(rng, a, "AdministratorAccess", suffixes), "AdministratorAccess")
            for a in accounts
        )
    chosen = rng.sample(
        accounts[1:] or accounts, min(len(accounts[1:] or accounts), rng.randrange(1, 4))
    )
    out = []
    for account in chosen:
        permission_set = rng.choices(PERMISSION_SETS[1:], weights=(2, 4, 3))[0]
        out.append(SsoAssignment(_sso_role(rng, account, permission_set, suffixes), permission_set))
    return tuple(out)


def _trips(rng: Random, config: SyntheticConfig) -> tuple[Trip, ...]:
    trips: list[Trip] = []
    day = 0
    while day < config.days:
        if rng.random() < config.travel_probability:
            length = rng.choice((1, 2, 2, 3))
            trips.append(Trip(day, day + length - 1, public_ipv4(rng)))
            day += length + 7  # no back-to-back trips
        else:
            day += 1
    return tuple(trips)


_LEGACY: Final = (
    ("legacy-deployer", "script", "aws-cli/1.29.62 Python/3.8.10 Linux/5.15.0-1050-aws botocore/1.31.62", (6, 11, 15), True),
    ("reporting-export", "script", "Boto3/1.26.100 Python/3.9.16 Linux/4.18.0-477.el8.x86_64 Botocore/1.29.100", (2,), False),
    ("breakglass-admin", "human", _BROWSERS[0], (), True),
)  # fmt: skip


def _legacy_user(rng: Random, index: int, accounts: list[Account]) -> LegacyUser:
    name, kind, agent, hours, weekdays = _LEGACY[index % len(_LEGACY)]
    if index >= len(_LEGACY):
        name = f"{name}-{index // len(_LEGACY)}"
    # The deployer lives in the first workload account; the rest in management.
    account = accounts[1] if index % len(_LEGACY) == 0 else accounts[0]
    user = IamUser(account.account_id, name, aws_id(rng, "AIDA", 17), aws_id(rng, "AKIA"))
    return LegacyUser(
        user=user,
        kind="human" if kind == "human" else "script",
        ip=public_ipv4(rng),
        agent=agent,
        run_hours=hours,
        weekdays_only=weekdays,
        mfa_serial=f"arn:aws:iam::{account.account_id}:mfa/{name}",
    )


def _pipeline(
    rng: Random, index: int, apps: tuple[App, ...], workloads: list[Account]
) -> CiPipeline:
    app_index = index % len(apps) if apps else -1
    account = apps[app_index].account if apps else workloads[0].account_id
    repo_name = apps[app_index].name if apps else f"infra-{index}"
    role = Role(account, f"github-deploy-{repo_name}", aws_id(rng, "AROA", 17))
    return CiPipeline(
        repo=f"{GITHUB_ORG}/{repo_name}",
        role=role,
        runner_ips=tuple(public_ipv4(rng) for _ in range(rng.randrange(3, 7))),
        app_index=app_index,
        runs_per_weekday=rng.uniform(2.0, 6.0),
    )


def _app(
    rng: Random, seed: int, index: int, workloads: list[Account], config: SyntheticConfig
) -> App:
    kind = APP_KINDS[index % len(APP_KINDS)]
    name = _APP_NAMES[index % len(_APP_NAMES)] + ("" if index < len(_APP_NAMES) else f"-{index}")
    account = workloads[index % len(workloads)].account_id
    region = config.regions[(index // len(workloads)) % len(config.regions)]
    vpc_prefix = f"10.{int(derived_hex(4, seed, account, region), 16) % 250}"
    resources = Resources(account, region, name, uuid4(rng), "i-0" + hex_string(rng, 16))
    role = Role(account, f"{name}-role", aws_id(rng, "AROA", 17))
    slots = _slots(rng, kind, name, vpc_prefix, config)
    weights = _op_weights(rng, kind)
    return App(
        name=name,
        kind=kind,
        role=role,
        resources=resources,
        agent=_SDK_AGENTS[3] if kind == "lambda" else rng.choice(_SDK_AGENTS[:3]),
        endpoints={
            service: "vpce-" + derived_hex(17, seed, account, region, service)
            for service in ENDPOINT_SERVICES
        },
        op_weights=weights,
        peak_hour=rng.choice((13, 14, 15, 16, 17)),
        slots=slots,
    )


def _op_weights(rng: Random, kind: AppKind) -> tuple[float, ...]:
    # Decrypt, GenerateDataKey, SendMessage, ReceiveMessage, DeleteMessage, GetObject,
    # PutObject, GetItem, PutItem, GetSecretValue (see ``_apps.APP_OPERATIONS``).
    base = [0.30, 0.10, 0.14, 0.15, 0.12, 0.06, 0.03, 0.05, 0.03, 0.008]
    if kind == "lambda":
        base[3] = base[4] = 0.04  # Lambda gets messages from an event source mapping
    return tuple(w * rng.uniform(0.6, 1.4) for w in base)


def _slots(
    rng: Random, kind: AppKind, name: str, vpc_prefix: str, config: SyntheticConfig
) -> tuple[tuple[Incarnation, ...], ...]:
    start = config.start_epoch
    end = config.end_epoch
    if kind == "lambda":
        # Execution environments come and go; credential refreshes should not all fall on
        # midnight, so each starts at its own offset.
        return tuple(
            (
                Incarnation(
                    name,
                    private_ipv4(rng, vpc_prefix),
                    start - DAY + rng.randrange(0, 6 * 3600),
                    end + DAY,
                ),
            )
            for _ in range(2)
        )
    slots = []
    for _ in range(config.instances_per_app):
        timeline: list[Incarnation] = []
        t = start - rng.randrange(0, 5 * DAY)
        while t < end:
            life = (
                rng.randrange(2 * DAY, 9 * DAY)
                if kind == "ec2"
                else rng.randrange(DAY // 2, 3 * DAY)
            )
            session = "i-0" + hex_string(rng, 16) if kind == "ec2" else hex_string(rng, 32)
            timeline.append(Incarnation(session, private_ipv4(rng, vpc_prefix), t, t + life))
            t += life
        slots.append(tuple(timeline))
    return tuple(slots)
