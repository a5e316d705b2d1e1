"""Test infrastructure: one PostgreSQL and one Kafka-protocol broker per run.

With `TEST_DATABASE_URL` / `TEST_KAFKA_BOOTSTRAP_SERVERS` set, those are used; otherwise the
embedded PostgreSQL and tansu are started once and stopped at the end. Each test gets its
own schemas and its own topic namespace, so tests never see each other's data or events.

Tests in `tests/unit/` run without either (`make test-unit`): one that asks for a fixture
needing them fails (`pytest_runtest_setup` below).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.embedded import ManagedProcess, start_postgres, start_tansu
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations

UNIT_TESTS = Path(__file__).resolve().parent / "unit"
SERVICES = Path(__file__).resolve().parent.parent / "services"
INFRASTRUCTURE_FIXTURES = frozenset({"infra", "db", "spine", "booking"})
"""Fixtures that start or use PostgreSQL or the broker (the others that do depend on `infra`,
so it is in their tests' fixture closure too)."""


def infrastructure_asked_by_unit_test(path: Path, fixturenames: list[str]) -> list[str]:
    """The fixtures needing PostgreSQL or the broker that a test in tests/unit asks for
    (directly or through other fixtures); empty for tests elsewhere."""
    if not path.resolve().is_relative_to(UNIT_TESTS):
        return []
    return sorted(INFRASTRUCTURE_FIXTURES.intersection(fixturenames))


SHARED_FIXTURES = frozenset({"spine", "booking", "console", "inbound", "plans"})
"""Fixtures that are the test's own services or its module's (`own_or_shared`): a module's
tests using one of them are kept on one xdist worker when they share."""


SLOW_FIRST = ("test_console_e2e.py", "test_online_booking_e2e.py", "test_ops_stack.py",
              "test_fuzz.py", "test_proof_run.py", "test_table_sizes.py", "test_notifier_crash.py",
              "test_devstack.py", "test_stack.py", "test_staff_sign_in.py", "test_template_overrides.py")
"""Modules of the longest tests (a minute or more, or many long ones), started first: under
xdist the workers then end on short tests, not on one long test while the others idle."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of `SLOW_FIRST` first, in its order (the others keep theirs); and keep
    the tests sharing their module's services on one xdist worker (`--dist loadgroup`), so
    that the services start once per module, not once on each worker."""
    for item in items:
        if shares_services(item) and SHARED_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.xdist_group(f"services of {item.path.name}"))
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a unit test that asks for the database or the broker, before it starts them."""
    asked = infrastructure_asked_by_unit_test(item.path, getattr(item, "fixturenames", []))
    if asked:
        pytest.fail(f"{item.nodeid} is in tests/unit but asks for {', '.join(asked)}: unit tests "
                    "run without PostgreSQL or the broker (move it out of tests/unit)",
                    pytrace=False)


@dataclass
class Infra:
    database_url: str
    bootstrap_servers: str
    postgres: ManagedProcess | None = None
    broker: ManagedProcess | None = None


@contextlib.contextmanager
def running_infrastructure() -> Iterator[Infra]:
    """PostgreSQL and the broker: those `TEST_DATABASE_URL` / `TEST_KAFKA_BOOTSTRAP_SERVERS`
    name, else the embedded ones, started here and stopped on leaving."""
    db_url = os.environ.get("TEST_DATABASE_URL")
    kafka = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    started: list[ManagedProcess] = []
    tmp = tempfile.TemporaryDirectory(prefix="kcb-test-")
    try:
        pg = broker = None
        if not db_url:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pg = start_postgres(Path(tmp.name) / "pg", fsync=False)
            started.append(pg)
            db_url = pg.url
        if not kafka:
            broker = start_tansu(log_file=Path(tmp.name) / "tansu.log")
            started.append(broker)
            kafka = broker.url
        yield Infra(db_url, kafka, pg, broker)
    finally:
        for proc in started:  # their data is thrown away: no clean shutdown to wait for
            proc.stop_signal = signal.SIGQUIT if proc is pg else signal.SIGKILL
            proc.stop()
        tmp.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n`), the controlling process starts one PostgreSQL and one broker
    for all its workers (they inherit the TEST_* variables): each test has its own schemas
    and topic prefix already, so workers share them as tests do. It migrates the database
    once before the workers start (`prepare_database`)."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        shared = running_infrastructure()
        infra = shared.__enter__()
        config.add_cleanup(lambda: shared.__exit__(None, None, None))
        asyncio.run(prepare_database(infra.database_url))
        os.environ["TEST_DATABASE_URL"] = infra.database_url
        os.environ["TEST_KAFKA_BOOTSTRAP_SERVERS"] = infra.bootstrap_servers


async def prepare_database(database_url: str) -> None:
    """Apply every service's migrations once, each in a schema of its own, so that the
    database-wide objects they create (the btree_gist extension, the audit roles) exist
    before xdist's workers migrate their first schemas at the same moment: `CREATE EXTENSION
    IF NOT EXISTS` run together in two sessions fails in one of them (a unique violation)."""
    for folder in sorted(SERVICES.glob("*/migrations")):
        pool = await create_pool(database_url, f"xdist_prepared_{folder.parent.name}", max_size=1)
        try:
            await apply_migrations(pool, discover_migrations(SHARED_MIGRATIONS, folder))
        finally:
            await pool.close()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """PostgreSQL and the broker for this run (see `running_infrastructure`)."""
    with running_infrastructure() as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashes() -> Iterator[None]:
    """Staff passwords hashed by the services in this process with argon2id at its least cost
    (one pass over 1 MiB, one lane): at the production cost (three passes over 64 MiB, four
    lanes) each hash or check takes about a quarter of a CPU-second, and the suite makes
    hundreds. The algorithm and the code around it stay the same; the services that tests
    start as processes (test_stack, test_devstack, the proof run) keep the production cost."""
    from argon2 import PasswordHasher

    from services.booking import staff

    production = staff._hasher
    staff._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    staff._dummy_hash.cache_clear()
    yield
    staff._hasher = production
    staff._dummy_hash.cache_clear()


_counter = itertools.count(1)
ADMIN_TOKEN = "test-operator-token"
ONLINE_CODE_KEY = "dGVzdC1vbmxpbmUtY29kZS1rZXktMzItYnl0ZXMhISE="
"""The key booking and the notifier seal verification codes with in tests (shared/sealed.py)."""


def new_namespace() -> str:
    """A short name unique in this run: used for schemas and the topic prefix."""
    return f"t{next(_counter)}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace() -> str:
    """A short name unique to this test: used for schemas and the topic prefix."""
    return new_namespace()


def shares_services(node: pytest.Item) -> bool:
    """Whether the test runs on its module's services (`shared_services`, and not `own_services`):
    started once per module and worker, not once per test. Each such test makes its own clinic
    network and reads only its own data, so the tests still cannot meet."""
    return (node.get_closest_marker("shared_services") is not None
            and node.get_closest_marker("own_services") is None)


def own_or_shared(request: pytest.FixtureRequest, name: str):
    """The fixture `own_<name>` (started for this test), or `module_<name>` if it shares its
    module's services. The fixtures calling it ask for `infra` too, unused, so that it is in
    their tests' fixture closure (the unit tests' guard looks there)."""
    return request.getfixturevalue(f"{'module' if shares_services(request.node) else 'own'}_{name}")


def sharable(name: str, running):
    """The fixtures `name` (the test's own or its module's, as `own_or_shared` picks),
    `own_<name>` and `module_<name>`, of the services `running(infra, namespace)` starts (an
    async context manager): a module assigns them to these names. Add `name` to
    `SHARED_FIXTURES`."""
    @pytest.fixture(name=name)
    def either(request: pytest.FixtureRequest, infra: Infra):
        return own_or_shared(request, name)

    @pytest.fixture(name=f"own_{name}")
    async def own(infra: Infra, namespace: str):
        async with running(infra, namespace) as started:
            yield started

    @pytest.fixture(name=f"module_{name}", scope="module")
    async def module(infra: Infra):
        async with running(infra, new_namespace()) as started:
            yield started

    return either, own, module


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test server (superuser, `public` schema)."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@dataclass
class RunningService:
    name: str
    app: object
    http: httpx.AsyncClient

    @property
    def runtime(self):
        return self.app.state.runtime

    @property
    def schema(self) -> str:
        return self.runtime.settings.schema


@dataclass
class Spine:
    """The three services running in this process against real PostgreSQL and Kafka."""

    services: dict[str, RunningService] = field(default_factory=dict)
    topic_prefix: str = ""

    def __getattr__(self, name: str) -> RunningService:
        try:
            return self.services[name]
        except KeyError:
            raise AttributeError(name) from None


def service_settings(name: str, infra: Infra, namespace: str, **overrides):
    from services.booking.settings import BookingSettings
    from services.notifier.settings import NotifierSettings
    from services.plans.settings import PlansSettings

    cls = {"booking": BookingSettings, "plans": PlansSettings, "notifier": NotifierSettings}[name]
    if name == "booking":
        overrides.setdefault("admin_token", ADMIN_TOKEN)
    if name in ("booking", "notifier"):
        overrides.setdefault("online_code_key", ONLINE_CODE_KEY)
    if name == "notifier":  # tests must not depend on the hour they run at (quiet hours
        overrides.setdefault("quiet_hours_start", 24)  # have their own tests)
        overrides.setdefault("quiet_hours_end", 0)
    overrides.setdefault("database_url", infra.database_url)  # or through a pooler
    return cls(kafka_bootstrap_servers=infra.bootstrap_servers,
               db_schema=f"{namespace}_{name}", topic_prefix=f"{namespace}.",
               outbox_poll_seconds=0.2, kafka_session_timeout_ms=2000,
               kafka_heartbeat_interval_ms=300, **overrides)


async def start_service(name: str, settings) -> RunningService:
    from services.booking.bootstrap import bootstrap as booking
    from services.notifier.bootstrap import bootstrap as notifier
    from services.plans.bootstrap import bootstrap as plans

    app = {"booking": booking, "plans": plans, "notifier": notifier}[name](settings)
    await app.state.runtime.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
    return RunningService(name, app, client)


async def stop_service(svc: RunningService) -> None:
    await svc.http.aclose()
    await svc.runtime.stop()


@pytest.fixture(scope="module")
def spine_overrides() -> dict[str, dict]:
    """Settings of `spine`'s services besides the tests' defaults, by service name (a test
    module overrides this fixture to change them; module-scoped where its tests share services)."""
    return {}


@contextlib.asynccontextmanager
async def running_spine(infra: Infra, namespace: str, overrides: dict[str, dict]) -> AsyncIterator[Spine]:
    """booking, plans and notifier, started in this process, stopped on leaving."""
    spine = Spine(topic_prefix=f"{namespace}.")
    try:
        started = await asyncio.gather(*(
            start_service(n, service_settings(n, infra, namespace, **overrides.get(n, {})))
            for n in ("booking", "plans", "notifier")))
        spine.services = {s.name: s for s in started}
        yield spine
    finally:
        for svc in spine.services.values():
            await stop_service(svc)


@contextlib.asynccontextmanager
async def running_booking(infra: Infra, namespace: str) -> AsyncIterator[RunningService]:
    """The booking service alone, started in this process, stopped on leaving."""
    svc = await start_service("booking", service_settings("booking", infra, namespace))
    try:
        yield svc
    finally:
        await stop_service(svc)


@pytest.fixture
def spine(request: pytest.FixtureRequest, infra: Infra) -> Spine:
    """booking, plans and notifier, started in this process: the test's own, or its module's
    (`shares_services`)."""
    return own_or_shared(request, "spine")


@pytest.fixture
async def own_spine(infra: Infra, namespace: str, spine_overrides: dict[str, dict]) -> AsyncIterator[Spine]:
    async with running_spine(infra, namespace, spine_overrides) as started:
        yield started


@pytest.fixture(scope="module")
async def module_spine(infra: Infra, spine_overrides: dict[str, dict]) -> AsyncIterator[Spine]:
    async with running_spine(infra, new_namespace(), spine_overrides) as started:
        yield started


@pytest.fixture
def booking(request: pytest.FixtureRequest, infra: Infra) -> RunningService:
    """The booking service alone, started in this process: the test's own, or its module's
    (`shares_services`; not the one of the module's `spine`)."""
    return own_or_shared(request, "booking")


@pytest.fixture
async def own_booking(infra: Infra, namespace: str) -> AsyncIterator[RunningService]:
    async with running_booking(infra, namespace) as started:
        yield started


@pytest.fixture(scope="module")
async def module_booking(infra: Infra) -> AsyncIterator[RunningService]:
    async with running_booking(infra, new_namespace()) as started:
        yield started


async def eventually(check, timeout: float = 20.0, interval: float = 0.1):
    """Await `check()` until it returns a truthy value; return it, or fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
