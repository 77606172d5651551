"""Application traffic: EC2 instances, ECS tasks and Lambda functions at work.

This is most of the volume, so it is written for speed: call times, operations and errors
are drawn per day with numpy, then one small builder per operation turns each draw into a
record. Workloads call from private addresses through VPC endpoints with SDK user agents:
KMS ``Decrypt``/``GenerateDataKey``, SQS and S3/DynamoDB data events, an occasional
``GetSecretValue``, with a diurnal rate. Around them AWS acts too: the compute service assumes
the role every credential period (``AWSService`` ``AssumeRole``), SQS and Secrets Manager
call KMS on the role's behalf (``invokedBy``), and autoscaling replaces instances.

Imports: the standard library, numpy, and this package's record, identity, organisation and
context modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from random import Random
from typing import Final

import numpy as np
import numpy.typing as npt

from detector.synthetic._context import (
    CREDENTIAL_PERIOD,
    DayContext,
    credential_key,
    period_start,
)
from detector.synthetic._formats import hex_string, sts_time, uuid4
from detector.synthetic._identity import IdentityFactory, Record, aws_service, role_session
from detector.synthetic._org import App, Incarnation
from detector.synthetic._records import (
    DATA,
    Caller,
    TimedRecord,
    api_call,
    kms_key_resource,
    role_resource,
    s3_additional,
    throttled,
)

APP_OPERATIONS: Final = (
    "Decrypt",
    "GenerateDataKey",
    "SendMessage",
    "ReceiveMessage",
    "DeleteMessage",
    "GetObject",
    "PutObject",
    "GetItem",
    "PutItem",
    "GetSecretValue",
)
COMPUTE_PRINCIPAL: Final = {
    "ec2": "ec2.amazonaws.com",
    "ecs": "ecs-tasks.amazonaws.com",
    "lambda": "lambda.amazonaws.com",
}
HIDDEN: Final = "HIDDEN_DUE_TO_SECURITY_REASONS"
_SERVICE_KEY_REUSE: Final = 300  # SQS reuses a data key for 5 minutes
_WEEKEND_FACTOR: Final = 0.6


class AppCalls:
    """Record builders for one running incarnation of an application."""

    def __init__(
        self, app: App, incarnation: Incarnation, rng: Random, *, caller: Caller | None = None
    ) -> None:
        """``caller`` replaces the usual private-address-through-endpoint callers."""
        self.app = app
        self.rng = rng
        self.res = app.resources
        self.account = app.account
        self.region = app.region
        if caller is None and app.nat_ip is not None:
            # Behind a NAT gateway: the public address of the gateway, no VPC endpoint.
            caller = Caller(app.nat_ip, app.agent)
        self.callers = {
            service: caller or Caller(incarnation.private_ip, app.agent, vpce, app.account)
            for service, vpce in app.endpoints.items()
        }
        self.key_resource = kms_key_resource(self.res.key_arn, self.account)
        self.queue_resource = {
            "accountId": self.account,
            "type": "AWS::SQS::Queue",
            "ARN": self.res.queue_arn,
        }
        self.table_resource = {
            "accountId": self.account,
            "type": "AWS::DynamoDB::Table",
            "ARN": self.res.table_arn,
        }
        self.s3_host = self.res.s3_host()
        self.builders: tuple[Callable[[int, Record, bool], Record], ...] = (
            self.decrypt,
            self.generate_data_key,
            self.send_message,
            self.receive_message,
            self.delete_message,
            self.get_object,
            self.put_object,
            self.get_item,
            self.put_item,
            self.get_secret_value,
        )

    def _kms(self, t: int, identity: Record, name: str, request: Record, failed: bool) -> Record:
        return api_call(
            self.rng,
            t,
            identity,
            self.callers["kms"],
            self.account,
            self.region,
            "kms.amazonaws.com",
            name,
            read_only=True,
            request=request,
            resources=[dict(self.key_resource[0])],
            error=throttled("kms.amazonaws.com") if failed else None,
        )

    def decrypt(self, t: int, identity: Record, failed: bool) -> Record:
        request = {
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "encryptionContext": {"app": self.app.name},
        }
        return self._kms(t, identity, "Decrypt", request, failed)

    def generate_data_key(self, t: int, identity: Record, failed: bool) -> Record:
        request = {
            "keyId": self.res.key_arn,
            "keySpec": "AES_256",
            "encryptionContext": {"app": self.app.name},
        }
        return self._kms(t, identity, "GenerateDataKey", request, failed)

    def _sqs(
        self,
        t: int,
        identity: Record,
        name: str,
        request: Record,
        response: Record | None,
        read_only: bool,
        failed: bool,
    ) -> Record:
        return api_call(
            self.rng,
            t,
            identity,
            self.callers["sqs"],
            self.account,
            self.region,
            "sqs.amazonaws.com",
            name,
            read_only=read_only,
            request=request,
            response=response,
            category=DATA,
            resources=[dict(self.queue_resource)],
            error=throttled("sqs.amazonaws.com") if failed else None,
        )

    def send_message(self, t: int, identity: Record, failed: bool) -> Record:
        request = {"queueUrl": self.res.queue_url, "messageBody": HIDDEN}
        response = {"mD5OfMessageBody": hex_string(self.rng, 32), "messageId": uuid4(self.rng)}
        return self._sqs(t, identity, "SendMessage", request, response, False, failed)

    def receive_message(self, t: int, identity: Record, failed: bool) -> Record:
        request = {"queueUrl": self.res.queue_url, "maxNumberOfMessages": 10, "waitTimeSeconds": 20}
        return self._sqs(t, identity, "ReceiveMessage", request, None, True, failed)

    def delete_message(self, t: int, identity: Record, failed: bool) -> Record:
        request = {"queueUrl": self.res.queue_url, "receiptHandle": HIDDEN}
        return self._sqs(t, identity, "DeleteMessage", request, None, False, failed)

    def _s3(self, t: int, identity: Record, name: str, read_only: bool, failed: bool) -> Record:
        key = f"{'exports' if read_only else 'incoming'}/{self.rng.randrange(10**6):06d}.json"
        size = self.rng.randrange(2_000, 400_000)
        return api_call(
            self.rng,
            t,
            identity,
            self.callers["s3"],
            self.account,
            self.region,
            "s3.amazonaws.com",
            name,
            read_only=read_only,
            request={"bucketName": self.res.bucket, "Host": self.s3_host, "key": key},
            response=None,
            category=DATA,
            resources=[
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{self.res.bucket}/{key}"},
                {
                    "accountId": self.account,
                    "type": "AWS::S3::Bucket",
                    "ARN": f"arn:aws:s3:::{self.res.bucket}",
                },
            ],
            additional=s3_additional(self.rng, size if read_only else 0, 0 if read_only else size),
            error=("SlowDown", "Please reduce your request rate.") if failed else None,
            host=self.s3_host,
        )

    def get_object(self, t: int, identity: Record, failed: bool) -> Record:
        return self._s3(t, identity, "GetObject", True, failed)

    def put_object(self, t: int, identity: Record, failed: bool) -> Record:
        return self._s3(t, identity, "PutObject", False, failed)

    def _dynamodb(
        self, t: int, identity: Record, name: str, read_only: bool, failed: bool
    ) -> Record:
        request: Record = {"tableName": self.res.table, "key": {"pk": HIDDEN}}
        if read_only:
            request["consistentRead"] = False
        return api_call(
            self.rng,
            t,
            identity,
            self.callers["dynamodb"],
            self.account,
            self.region,
            "dynamodb.amazonaws.com",
            name,
            read_only=read_only,
            request=request,
            category=DATA,
            resources=[dict(self.table_resource)],
            error=("ProvisionedThroughputExceededException", "The level of configured provisioned "
                   "throughput for the table was exceeded.") if failed else None,
        )  # fmt: skip

    def get_item(self, t: int, identity: Record, failed: bool) -> Record:
        return self._dynamodb(t, identity, "GetItem", True, failed)

    def put_item(self, t: int, identity: Record, failed: bool) -> Record:
        return self._dynamodb(t, identity, "PutItem", False, failed)

    def get_secret_value(self, t: int, identity: Record, failed: bool) -> Record:
        return api_call(
            self.rng,
            t,
            identity,
            self.callers["secretsmanager"],
            self.account,
            self.region,
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            read_only=True,
            request={"secretId": self.res.secret_arn},
            error=throttled("secretsmanager.amazonaws.com") if failed else None,
        )

    def on_behalf(self, t: int, identity: Record, service: str, name: str) -> Record:
        """A KMS call a service makes for the role (SQS encryption, secret decryption)."""
        identity["invokedBy"] = service
        caller = Caller(service, service, tls=False)
        if service == "secretsmanager.amazonaws.com":
            context = {"SecretARN": self.res.secret_arn, "SecretVersionId": uuid4(self.rng)}
        else:
            context = {"aws:sqs:arn": self.res.queue_arn}
        request: Record = {"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": context}
        if name == "GenerateDataKey":
            request = {
                "keyId": self.res.key_arn,
                "keySpec": "AES_256",
                "encryptionContext": context,
            }
        return api_call(
            self.rng,
            t,
            identity,
            caller,
            self.account,
            self.region,
            "kms.amazonaws.com",
            name,
            read_only=True,
            request=request,
            resources=[dict(self.key_resource[0])],
        )


def diurnal(peak_hour: int, weekend: bool) -> npt.NDArray[np.float64]:
    """Relative call rate per UTC hour: a daytime bell over a steady floor."""
    hours = np.arange(24, dtype=np.float64)
    distance = np.minimum(np.abs(hours - peak_hour), 24 - np.abs(hours - peak_hour))
    shape: npt.NDArray[np.float64] = 0.35 + 0.65 * np.exp(-0.5 * (distance / 4.5) ** 2)
    return shape * ((_WEEKEND_FACTOR if weekend else 1.0) * 1.25)


def app_streams(
    ctx: DayContext, app_index: int
) -> tuple[list[Iterator[TimedRecord]], list[TimedRecord]]:
    """One application's day: lazy call streams (one per running incarnation, each in time
    order) and the few records of AWS managing it (credential refreshes, autoscaling).

    The streams build each record only when asked for it, so a consumer that does not keep
    records never holds more than a handful (see ``_generate``).
    """
    app = ctx.org.apps[app_index]
    streams: list[Iterator[TimedRecord]] = []
    lifecycle: list[TimedRecord] = []
    end = min(ctx.end, ctx.config.end_epoch)
    for slot_index, timeline in enumerate(app.slots):
        for incarnation in timeline:
            lo, hi = max(incarnation.start, ctx.start), min(incarnation.end, end)
            if lo >= hi:
                continue
            actor = ("app", app_index, slot_index, incarnation.session_name)
            _lifecycle(ctx, app, incarnation, ctx.rng("lifecycle", *actor), lifecycle)
            streams.append(_calls(ctx, app, incarnation, lo, hi, actor))
    return streams, lifecycle


def _calls(
    ctx: DayContext,
    app: App,
    incarnation: Incarnation,
    lo: int,
    hi: int,
    actor: tuple[object, ...],
) -> Iterator[TimedRecord]:
    np_rng = ctx.np_rng(*actor)
    rate = (
        diurnal(app.peak_hour, ctx.is_weekend)
        * ctx.config.app_calls_per_instance_hour
        * app.rate_factor
    )
    counts = np_rng.poisson(rate)
    hours = np.repeat(np.arange(24), counts)
    times = ctx.start + hours * 3600 + np_rng.integers(0, 3600, hours.size)
    times.sort()
    weights = np.asarray(app.op_weights)
    ops = np_rng.choice(len(APP_OPERATIONS), size=times.size, p=weights / weights.sum())
    failed = np_rng.random(times.size) < ctx.config.error_rate * 0.3
    keep = (times >= lo) & (times < hi)
    calls = AppCalls(app, incarnation, ctx.rng(*actor))
    builders = calls.builders
    issued = -1
    factory: IdentityFactory | None = None
    last_sqs_key = {"GenerateDataKey": -(10**9), "Decrypt": -(10**9)}
    for t, op, fail in zip(
        times[keep].tolist(), ops[keep].tolist(), failed[keep].tolist(), strict=True
    ):
        current = period_start(incarnation.start, t)
        if current != issued or factory is None:
            issued = current
            factory = _session(ctx, app, incarnation, current)
        yield t, builders[op](t, factory(), fail)
        if fail:
            continue
        if op == 9:  # Secrets Manager decrypts the secret with the role's permissions
            yield t, calls.on_behalf(t, factory(), "secretsmanager.amazonaws.com", "Decrypt")
        elif op in (2, 3):
            name = "GenerateDataKey" if op == 2 else "Decrypt"
            if t - last_sqs_key[name] >= _SERVICE_KEY_REUSE:
                last_sqs_key[name] = t
                yield t, calls.on_behalf(t, factory(), "sqs.amazonaws.com", name)


def _session(ctx: DayContext, app: App, incarnation: Incarnation, issued: int) -> IdentityFactory:
    return role_session(
        app.role,
        incarnation.session_name,
        credential_key(ctx.seed, incarnation.session_name, issued),
        issued,
        ec2_role_delivery=app.kind == "ec2",
    )


def _lifecycle(
    ctx: DayContext, app: App, incarnation: Incarnation, rng: Random, out: list[TimedRecord]
) -> None:
    """Credential refreshes, and autoscaling launching and terminating instances."""
    end = min(ctx.end, ctx.config.end_epoch)
    first = max(ctx.start, incarnation.start)
    issued = period_start(incarnation.start, first)
    if issued < first:
        issued += CREDENTIAL_PERIOD
    while issued < min(end, incarnation.end):
        out.append((issued, _assume_role(ctx, app, incarnation, issued, rng)))
        issued += CREDENTIAL_PERIOD
    if app.kind != "ec2":
        return
    if ctx.start <= incarnation.start < end:
        out.append((incarnation.start, _autoscaling(ctx, app, incarnation, True, rng)))
    if ctx.start <= incarnation.end < end:
        out.append((incarnation.end, _autoscaling(ctx, app, incarnation, False, rng)))


def _assume_role(
    ctx: DayContext, app: App, incarnation: Incarnation, issued: int, rng: Random
) -> Record:
    service = COMPUTE_PRINCIPAL[app.kind]
    session = incarnation.session_name
    return api_call(
        rng,
        issued,
        aws_service(service),
        Caller(service, service, tls=False),
        app.account,
        app.region,
        "sts.amazonaws.com",
        "AssumeRole",
        read_only=True,
        request={"roleArn": app.role.arn, "roleSessionName": session},
        response={
            "credentials": {
                "accessKeyId": credential_key(ctx.seed, session, issued),
                "sessionToken": "IQoJb3JpZ2luX2VjE" + hex_string(rng, 48),
                "expiration": sts_time(issued + CREDENTIAL_PERIOD),
            },
            "assumedRoleUser": {
                "assumedRoleId": f"{app.role.role_id}:{session}",
                "arn": app.role.session_arn(session),
            },
        },
        resources=role_resource(app.role.arn, app.account),
        shared_event_id=uuid4(rng),
    )


def _autoscaling(
    ctx: DayContext, app: App, incarnation: Incarnation, launch: bool, rng: Random
) -> Record:
    t = incarnation.start if launch else incarnation.end
    role = ctx.org.service_role(
        app.account, "autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling"
    )
    issued = t - t % 3600
    identity = role_session(
        role, "AutoScaling", credential_key(ctx.seed, role.arn, issued), issued
    )()
    identity["invokedBy"] = "autoscaling.amazonaws.com"
    caller = Caller("autoscaling.amazonaws.com", "autoscaling.amazonaws.com", tls=False)
    items = {"items": [{"instanceId": incarnation.session_name}]}
    if launch:
        request: Record = {
            "instancesSet": {"items": [{"minCount": 1, "maxCount": 1}]},
            "launchTemplate": {"launchTemplateName": f"{app.name}-lt", "version": "$Latest"},
        }
        response: Record = {
            "instancesSet": {
                "items": [
                    {
                        "instanceId": incarnation.session_name,
                        "privateIpAddress": incarnation.private_ip,
                    }
                ]
            }
        }
        name = "RunInstances"
    else:
        request, response, name = (
            {"instancesSet": items},
            {"instancesSet": items},
            "TerminateInstances",
        )
    return api_call(
        rng, t, identity, caller, app.account, app.region, "ec2.amazonaws.com", name,
        read_only=False, request=request, response=response,
    )  # fmt: skip
