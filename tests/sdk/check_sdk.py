#!/usr/bin/env python3
"""The official Alibaba Cloud IoT SDK for Python (alibabacloud-iot20180120) against `serve`.

Usage: check_sdk.py HOST:PORT

`serve` must run with `--data tests/data/contract/tasks.jsonl --case pascal
--access-key testid:testsecret` (the SDK reads PascalCase keys). The SDK is used unchanged,
in both of its signing modes: the default V3 (`ACS3-HMAC-SHA256`, the action in the
`x-acs-action` header) and `signature_algorithm='v2'` (RPC v1 HMAC-SHA1, every parameter in
the query string of a POST). The transport is only watched, to prove which mode was used.
Exits 0 when every check passes, 1 otherwise.
"""

import sys

from alibabacloud_iot20180120 import models as iot_models
from alibabacloud_iot20180120.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from darabonba.core import DaraCore

IOT_ID = "TfmUAeJjQQhCPH84UVNn0010c6****"
# The device's unfinished tasks in answer order (utcCreate, then taskId in byte order).
ALL_TASKS = ["10", "183634077949482****", "9"]

# What went over the wire last: (method, headers, query), recorded, never altered.
_sent = []
_do_action = DaraCore.do_action


def _watching_do_action(request, runtime_option=None):
    _sent.append((request.method, dict(request.headers), dict(request.query)))
    return _do_action(request, runtime_option)


DaraCore.do_action = staticmethod(_watching_do_action)

failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def client(endpoint, mode, secret="testsecret"):
    config = open_api_models.Config(
        access_key_id="testid",
        access_key_secret=secret,
        endpoint=endpoint,
        protocol="http",
        region_id="cn-shanghai",
        read_timeout=10_000,
        connect_timeout=5_000,
    )
    if mode == "v2":
        config.signature_algorithm = "v2"
    return Client(config)


def task_ids(response):
    data = response.body.data
    return [t.task_id for t in (data.simple_otatask_info if data else [])]


def call(cli, **request):
    return cli.list_otaunfinished_task_by_device(
        iot_models.ListOTAUnfinishedTaskByDeviceRequest(**request)
    )


def status_of(error):
    """The HTTP status an SDK exception carries."""
    return getattr(error, "statusCode", None)


def describe(error):
    if error is None:
        return "nothing raised"
    return f"{type(error).__name__} {getattr(error, 'code', None)} HTTP {status_of(error)}"


def error_of(thunk):
    try:
        thunk()
    except Exception as error:  # the SDK raises its own exception classes on 4xx/5xx
        return error
    return None


def check_mode(endpoint, mode):
    cli = client(endpoint, mode)

    response = call(cli, iot_id=IOT_ID)
    method, headers, query = _sent[-1]
    lower = {k.lower(): v for k, v in headers.items()}
    if mode == "v3":
        check(
            lower.get("authorization", "").startswith("ACS3-HMAC-SHA256")
            and lower.get("x-acs-action") == "ListOTAUnfinishedTaskByDevice"
            and "Action" not in query,
            f"{mode}: the SDK signed with ACS3-HMAC-SHA256, the action in x-acs-action",
        )
    else:
        check(
            method == "POST"
            and query.get("SignatureMethod") == "HMAC-SHA1"
            and "Signature" in query
            and query.get("Action") == "ListOTAUnfinishedTaskByDevice",
            f"{mode}: the SDK signed with RPC v1, every parameter in a POST's query string",
        )
    check(response.status_code == 200, f"{mode}: HTTP 200")
    check(response.body.success is True, f"{mode}: Success is true")
    check(response.body.code == "", f"{mode}: Code is empty")
    check(bool(response.body.request_id), f"{mode}: a RequestId")
    check(task_ids(response) == ALL_TASKS, f"{mode}: IotId gives 3 tasks {task_ids(response)}")
    first = response.body.data.simple_otatask_info[0]
    check(
        (first.product_key, first.device_name, first.module_name, first.task_status)
        == ("K1nhvyl****", "Light", "default", "QUEUED")
        and first.utc_create == "2024-11-11T11:11:11.000Z",
        f"{mode}: the task's fields are read by the SDK's model",
    )

    filtered = call(
        cli, iot_id=IOT_ID, module_name="default", task_status_list=["QUEUED", "CONFIRM"]
    )
    check(task_ids(filtered) == ["10"], f"{mode}: ModuleName + TaskStatusList.N filter")

    by_name = call(cli, product_key="K1nhvyl****", device_name="Light", task_status="CONFIRM")
    check(
        task_ids(by_name) == ["183634077949482****"],
        f"{mode}: ProductKey + DeviceName + TaskStatus",
    )

    business = call(cli, product_key="K1nhvyl****", device_name="abc")
    check(
        business.status_code == 200
        and business.body.success is False
        and business.body.code == "iot.device.InvalidFormattedDeviceName"
        and bool(business.body.error_message),
        f"{mode}: business error read from an HTTP 200 answer",
    )

    missing = error_of(lambda: call(cli, product_key="K1nhvyl****"))
    check(
        missing is not None
        and getattr(missing, "code", None) == "MissingParameter"
        and status_of(missing) == 400
        and "DeviceName" in str(getattr(missing, "message", "")),
        f"{mode}: MissingParameter raised by the SDK ({describe(missing)})",
    )

    wrong = error_of(lambda: call(client(endpoint, mode, secret="wrongsecret"), iot_id=IOT_ID))
    check(
        wrong is not None
        and getattr(wrong, "code", None) == "SignatureDoesNotMatch"
        and status_of(wrong) == 403,
        f"{mode}: a wrong secret fails with SignatureDoesNotMatch ({describe(wrong)})",
    )


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint = sys.argv[1]
    for mode in ("v3", "v2"):
        try:
            check_mode(endpoint, mode)
        except Exception as error:
            check(False, f"{mode}: unexpected {error!r}")
    if failures:
        print(f"{len(failures)} SDK check(s) failed", file=sys.stderr)
        return 1
    print("the official SDK works against serve in both signing modes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
