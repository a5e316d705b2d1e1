"""Schemathesis hooks for `test_fuzz` (loaded by the fuzzer's process through
`SCHEMATHESIS_HOOKS`; the test passes what they need in the environment).

- Real ids: the OpenAPI documents get examples (real ids of rows of the fuzzing network,
  a valid phone number, time zone, session type), which the coverage phase builds its cases
  around; and a generated UUID where a path, query or body field names a row (`site_id`,
  `patient_id`, ...) is swapped, for most cases, for the id of a row of the fuzzing network,
  so that requests get past "unknown site" to the code behind it. Which cases keep their
  random id is decided from the case's own values (the run stays deterministic).
- Signed webhooks: requests to the Twilio webhooks are signed as Twilio signs them, over the
  URL and the form exactly as the notifier will read them, so the fuzzer reaches the code
  behind the signature check."""

from __future__ import annotations

import json
import os
import zlib
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

import requests
import schemathesis
from twilio.request_validator import RequestValidator

IDS: dict[str, str] = json.loads(os.environ.get("FUZZ_IDS", "{}"))
"""Field name -> id of a row of the fuzzing network (e.g. "site_id")."""
VALUES: dict[str, str] = json.loads(os.environ.get("FUZZ_VALUES", "{}"))
"""Field name -> a value the service knows (e.g. "session_type": "iv_infusion")."""
TWILIO_AUTH_TOKEN = os.environ.get("FUZZ_TWILIO_AUTH_TOKEN", "")


def _is_uuid(value) -> bool:
    try:
        UUID(value)
        return True
    except (TypeError, ValueError, AttributeError):
        return False


def _known(values):
    """`values` (a dict of fields) with ids and names swapped for known ones, for 3 cases
    in 4."""
    if not isinstance(values, dict) or zlib.crc32(repr(sorted(map(str, values.items()))).encode()) % 4 == 0:
        return values
    out = dict(values)
    for name, value in values.items():
        if name in IDS and _is_uuid(value):
            out[name] = IDS[name]
        elif name in VALUES and isinstance(value, str):
            out[name] = VALUES[name]
    return out


def _with_examples(node) -> None:
    """Give every property and parameter named in `IDS` or `VALUES` that value as its example
    (the coverage phase builds its cases around examples)."""
    known = {**VALUES, **IDS}
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            if name in known and isinstance(prop, dict):
                prop["example"] = known[name]
        if node.get("in") in ("path", "query") and node.get("name") in known:
            node["example"] = known[node["name"]]
        for child in node.values():
            _with_examples(child)
    elif isinstance(node, list):
        for child in node:
            _with_examples(child)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    _with_examples(raw_schema)


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    return _known(path_parameters)


@schemathesis.hook
def map_query(context, query):
    return _known(query)


@schemathesis.hook
def map_body(context, body):
    return _known(body)


@schemathesis.hook
def before_call(context, case, kwargs):
    """Sign what goes to the Twilio webhooks, as the notifier will check it."""
    if not case.path.startswith("/twilio/") or not TWILIO_AUTH_TOKEN:
        return
    sent = case.as_transport_kwargs()
    prepared = requests.Request(method=sent["method"], url=sent["url"], params=sent.get("params"),
                                data=sent.get("data"), json=sent.get("json"),
                                headers=sent.get("headers")).prepare()
    body = prepared.body or b""
    form = dict(parse_qsl(body.decode(errors="replace") if isinstance(body, bytes) else body,
                          keep_blank_values=True))
    parts = urlsplit(prepared.url)
    url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(url, form)
    case.headers = {**(case.headers or {}), "X-Twilio-Signature": signature}
