"""Every endpoint of the three services, fuzzed from its own OpenAPI document by schemathesis
against the services running in this process on real PostgreSQL and the broker.

The fuzzer runs as its own process (the schemathesis command line) while the services serve
HTTP on loopback ports from this test's event loop. It is authenticated as a clinic network
made here (admin API key), with the ops token for `/ops` and the platform token for
`POST /clinics`; the Twilio webhooks are signed (`tests/fuzz_hooks.py`), and most cases use
the ids of the network's rows. Phases: examples, coverage (boundary and invalid values of
every parameter) and fuzzing, a few cases per operation, derandomized: the same cases each
run. Checks: no 5xx, and responses in the documented content type and schema.

The operations are fuzzed in parts (`PARTS`), one test each, so that pytest-xdist's workers
share them: each part is a path filter of one service's document, and a service's last
part takes every path its other parts leave (so every operation is in exactly one part,
new ones included). The cases of an operation are the same whichever part it is in."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

from devstack.embedded import free_port
from tests.conftest import ADMIN_TOKEN, eventually
from tests.helpers import create_network
from tests.test_booking_rules import next_local

NAMES = ("booking", "plans", "notifier")
OPS_TOKEN = "fuzz-ops-token"
TWILIO_AUTH_TOKEN = "fuzz-twilio-auth-token"
ROOT = Path(__file__).resolve().parent.parent
CHECKS = "not_a_server_error,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 15
"""Random cases per operation (the coverage phase adds its own)."""
SPLIT = {"booking": {"bookings": r"^/(bookings|waitlist)(/|$)",
                     "people": r"^/(patients|patient-names|staff|auth)(/|$)",
                     "catalogue": r"^/(sites|rooms|providers|session-types)(/|$)"},
         "plans": {},
         "notifier": {"texts": r"^/(patients|replies|opt-outs|twilio)(/|$)"}}
"""Each service's parts besides its last, by the paths they take (booking has 77 operations,
notifier 35, plans 26)."""


def parts() -> dict[str, tuple[str, list[str]]]:
    """Part name -> the service fuzzed and the schemathesis options choosing its operations:
    a service's named parts, then its rest (every path they leave)."""
    found = {}
    for service, named in SPLIT.items():
        for part, regex in named.items():
            found[f"{service}-{part}"] = (service, ["--include-path-regex", regex])
        rest = ["--exclude-path-regex", "|".join(named.values())] if named else []
        found[f"{service}-rest" if named else service] = (service, rest)
    return found


PARTS = parts()
CONFIG = """
[cache]
enabled = false  # no crash cache in the work tree: each run is the same run

[phases.coverage]
unexpected-methods = ["delete"]  # one method a route does not have: 405, not 5xx
"""


@pytest.fixture
def spine_overrides() -> dict[str, dict]:
    """Each service on a port of its own, with the ops token, and the notifier checking
    Twilio signatures against its own URL."""
    ports = {name: free_port() for name in NAMES}
    peers = ",".join(f"{name}=http://127.0.0.1:{port}" for name, port in ports.items())
    overrides = {name: {"http_port": port, "ops_token": OPS_TOKEN, "ops_peers": peers}
                 for name, port in ports.items()}
    overrides["notifier"].update(twilio_auth_token=TWILIO_AUTH_TOKEN,
                                 public_base_url=f"http://127.0.0.1:{ports['notifier']}")
    return overrides


@asynccontextmanager
async def serving(spine):
    """The spine's apps served over HTTP on their ports, from this event loop."""
    servers = [uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", lifespan="off",
                                             port=svc.runtime.settings.http_port,
                                             log_config=None, access_log=False))
               for svc in spine.services.values()]
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    try:
        await eventually(lambda: _all_started(servers), timeout=30)
        yield {name: f"http://127.0.0.1:{svc.runtime.settings.http_port}"
               for name, svc in spine.services.items()}
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)


async def _all_started(servers) -> bool:
    return all(s.started for s in servers)


async def known_rows(spine) -> tuple[str, dict, dict]:
    """A network with a site, room, provider, patient, booking and plan: its admin key, the
    ids the fuzzer swaps in and the values it may use."""
    net = await create_network(spine.booking.http)
    booked = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "iv_infusion", "starts_at": next_local("America/Vancouver")})
    assert booked.status_code == 201, booked.text

    async def plan():
        r = await spine.plans.http.get(f"/patients/{net.patient['id']}/plans", headers=net.headers)
        return r.status_code == 200 and r.json()

    [started] = await eventually(plan, timeout=30)
    ids = {"site_id": net.site["id"], "patient_id": net.patient["id"],
           "booking_id": booked.json()["id"], "plan_id": started["id"],
           "room_id": net.rooms[0]["id"], "provider_id": net.providers[0]["id"]}
    values = {"session_type": "iv_infusion", "code": "iv_infusion", "template": "iv_induction",
              "patient": net.patient["id"], "timezone": "America/Vancouver",
              "phone": "+1 604 555 0142", "modality": "iv_infusion"}
    return net.key, ids, values


async def fuzz(name: str, url: str, key: str, ids: dict, values: dict, reports: Path,
               operations: list[str]):
    """Run schemathesis against one service's `operations` (path filter options); its exit
    code and what it printed."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": str(ROOT),
           "FUZZ_IDS": json.dumps(ids), "FUZZ_VALUES": json.dumps(values),
           "FUZZ_TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN}
    config = reports / "schemathesis.toml"
    config.write_text(CONFIG)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{url}/openapi.json", *operations,
        "--header", f"X-API-Key: {key}", "--header", f"X-Ops-Token: {OPS_TOKEN}",
        "--header", f"X-Admin-Token: {ADMIN_TOKEN}",
        "--checks", CHECKS, "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
        "--generation-with-security-parameters", "false",
        "--suppress-health-check", "all", "--workers", "1", "--request-timeout", "20",
        "--no-color", "--report", "junit", "--report-dir", str(reports / name),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.parametrize("part", list(PARTS))
async def test_no_request_generated_from_the_openapi_documents_gets_a_server_error(spine, tmp_path, part):
    name, operations = PARTS[part]
    key, ids, values = await known_rows(spine)
    async with serving(spine) as urls:
        code, out = await fuzz(name, urls[name], key, ids, values, tmp_path, operations)
    assert code == 0, f"--- {part} ---\n{out}"
