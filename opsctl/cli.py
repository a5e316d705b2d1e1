"""`kcb-ops`: what an on-call person runs. It talks to the services' `/ops` endpoints only
(never to their databases), with the ops token from `--token`, `OPS_TOKEN` or the file
`make run` writes (`.data/ops-token`), at the services of `--peers`, `OPS_PEERS`, the file
`make run` writes (`.data/ops-peers`: the ports it started them on) or the default ports.
Every command exits non-zero when something is unhealthy or fails, so `kcb-ops status` can
back an alert."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from shared.ops_overview import gather_overview, parse_peers
from shared.settings import ServiceSettings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(help="Dead letters: list, show, replay, discard.", no_args_is_help=True)
texts_app = typer.Typer(help="The notifier's text queue.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify its hash chains.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(texts_app, name="texts")
app.add_typer(audit_app, name="audit")
console = Console()
DATA_DIR = Path(
    os.environ.get("DEVSTACK_DATA_DIR", Path(__file__).resolve().parent.parent / ".data")
)
TOKEN_FILE = DATA_DIR / "ops-token"
PEERS_FILE = DATA_DIR / "ops-peers"
DEFAULT_PEERS = ServiceSettings.model_fields["ops_peers"].default


class Ops:
    """The services' ops endpoints, by service name."""

    def __init__(self, peers: str, token: str):
        self.peers = parse_peers(peers)
        self.token = token
        self.http = httpx.Client(timeout=15.0, headers={"X-Ops-Token": token})

    def url(self, service: str) -> str:
        if service not in self.peers:
            raise typer.BadParameter(
                f"unknown service {service!r} (one of {', '.join(self.peers)})"
            )
        return self.peers[service]

    def call(self, method: str, service: str, path: str, **kwargs) -> Any:
        """The JSON answer; exits with the error when the call fails."""
        return self.checked(service, self.send(method, service, path, **kwargs))

    def send(self, method: str, service: str, path: str, **kwargs) -> httpx.Response:
        """The response, whatever its status; exits when the service is unreachable."""
        try:
            return self.http.request(method, self.url(service) + path, **kwargs)
        except httpx.HTTPError as exc:
            _fail(f"{service} unreachable ({type(exc).__name__})")

    def checked(self, service: str, response: httpx.Response) -> Any:
        """The JSON answer of `response`; exits with its error when it failed."""
        if response.status_code >= 400:
            try:
                detail = response.json().get("message") or response.json().get("detail")
            except ValueError:
                detail = response.text[:200]
            _fail(f"{service}: {response.status_code} {detail}")
        return response.json()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)


def _token() -> str:
    if os.environ.get("OPS_TOKEN"):
        return os.environ["OPS_TOKEN"]
    if TOKEN_FILE.exists():
        return TOKEN_FILE.read_text().strip()
    return ""


def _peers() -> str:
    """The services `make run` started (one `name=url` a line), else the default ports."""
    if PEERS_FILE.exists():
        return ",".join(PEERS_FILE.read_text().split())
    return DEFAULT_PEERS


@app.callback()
def main_options(
    ctx: typer.Context,
    peers: Annotated[
        str,
        typer.Option(
            envvar="OPS_PEERS",
            help=(
                "name=url,... of every service "
                "(default: OPS_PEERS, .data/ops-peers, the default ports)"
            ),
        ),
    ] = "",
    token: Annotated[
        str, typer.Option(help="ops token (default: OPS_TOKEN or .data/ops-token)")
    ] = "",
) -> None:
    ctx.obj = Ops(peers or _peers(), token or _token())


def _services(ops: Ops, service: str | None) -> list[str]:
    return [service] if service else list(ops.peers)


def _ref(ref: str) -> tuple[str, int]:
    service, sep, letter = ref.partition(":")
    if not sep or not letter.isdigit():
        raise typer.BadParameter(f"expected SERVICE:ID (as `dlq list` prints), got {ref!r}")
    return service, int(letter)


@app.command()
def status(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="print the JSON")] = False) -> None:
    """Lag, outbox backlog, dead letters, late texts, failing numbers of every service.
    Exits 1 when anything is unhealthy."""
    ops: Ops = ctx.obj
    overview = asyncio.run(gather_overview(ops.peers, ops.token))
    if as_json:
        print(json.dumps(overview, indent=2, default=str))
    else:
        console.print(overview_table(overview))
        for problem in overview["problems"]:
            console.print(f"[red]problem:[/] {problem}")
        if overview["healthy"]:
            console.print("[green]all healthy[/]")
    raise typer.Exit(0 if overview["healthy"] else 1)


def overview_table(overview: dict[str, Any]) -> Table:
    """One row per service: the figures the dashboard shows too."""
    table = Table(title="ketamine clinic backbone")
    for column in ("service", "healthy", "postgres", "kafka", "lag", "outbox", "oldest (s)",
                   "dead letters", "texts late", "failing numbers", "timers overdue"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for name, s in overview["services"].items():
        ready, outbox = s.get("ready", {}), s.get("outbox", {})
        texts, timers = s.get("texts", {}), s.get("timers", {})
        table.add_row(
            name, "[green]yes[/]" if s.get("healthy") else "[red]no[/]",
            str(ready.get("postgres", "?")), str(ready.get("kafka", "?")),
            _num(s.get("lag", {}).get("total")), _num(outbox.get("backlog")),
            _num(outbox.get("oldest_age_seconds"), "{:.0f}"),
            _num(s.get("dead_letters", {}).get("pending")), _num(texts.get("late")),
            _num(texts.get("failing_numbers")), _num(timers.get("overdue")))
    return table


def _num(value: Any, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Option()] = None,
    state: Annotated[
        str, typer.Option("--status", help="pending, replayed, discarded, all")
    ] = "pending",
) -> None:
    """Dead letters of every service (or one), pending ones by default."""
    ops: Ops = ctx.obj
    table = Table("ref", "consumer", "topic", "event", "error", "at", "status")
    for name in _services(ops, service):
        after = 0
        while True:
            page = ops.call("GET", name, "/ops/dlq", params={"status": state, "after": after})
            for d in page["items"]:
                table.add_row(
                    f"{name}:{d['id']}",
                    d["consumer"],
                    f"{d['topic']}[{d['partition']}]@{d['offset']}",
                    d["event_type"] or "?",
                    d["error"][:80],
                    d["created_at"][:19],
                    d["status"],
                )
            if page["next_after"] is None:
                break
            after = page["next_after"]
    console.print(table)


@dlq_app.command("show")
def dlq_show(ctx: typer.Context, ref: str) -> None:
    """One dead letter (SERVICE:ID): source, error, the event with patient data redacted,
    actions."""
    service, letter = _ref(ref)
    console.print_json(json.dumps(ctx.obj.call("GET", service, f"/ops/dlq/{letter}"), default=str))


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument()] = None,
    all_: Annotated[bool, typer.Option("--all", help="every pending letter")] = False,
    service: Annotated[str | None, typer.Option(help="with --all: only this service")] = None,
    wait: Annotated[bool, typer.Option(help="with --all: follow the jobs to the end")] = True,
    actor: Annotated[str, typer.Option(help="who replays (recorded)")] = getpass.getuser(),
) -> None:
    """Put dead letters back on their source topics, for the consumer that failed them, once
    the cause is fixed: one (SERVICE:ID), or all pending ones (--all: a job in each service,
    followed with a progress bar; Ctrl-C stops following, not the jobs)."""
    ops: Ops = ctx.obj
    if ref and not all_:
        name, letter = _ref(ref)
        ops.call("POST", name, f"/ops/dlq/{letter}/replay", json={"actor": actor})
        console.print(f"replayed {ref}")
        return
    if not all_:
        raise typer.BadParameter("give SERVICE:ID or --all")
    jobs = {name: _start_job(ops, name, actor) for name in _services(ops, service)}
    if not wait:
        for name, job in jobs.items():
            console.print(f"{name}: replay job {job['id']}: {job['total']} letters "
                          f"(follow it with `kcb-ops dlq jobs`)")
        return
    with Progress(console=console) as progress:
        bars = {name: progress.add_task(f"{name} job {job['id']}", total=job["total"],
                                        completed=job["total"] - job["remaining"])
                for name, job in jobs.items()}
        while any(job["status"] != "done" for job in jobs.values()):
            time.sleep(0.5)
            for name, job in jobs.items():
                if job["status"] != "done":
                    jobs[name] = job = ops.call("GET", name, f"/ops/dlq/replay/{job['id']}")
                    progress.update(bars[name], completed=job["total"] - job["remaining"])
    skipped = sum(job["skipped"] for job in jobs.values())
    console.print(f"replayed {sum(job['replayed'] for job in jobs.values())} dead letters"
                  + (f" ({skipped} skipped: resolved meanwhile)" if skipped else ""))


def _start_job(ops: Ops, service: str, actor: str) -> dict:
    """Start a service's "replay all" job, or follow the one already running there."""
    response = ops.send("POST", service, "/ops/dlq/replay", json={"actor": actor})
    if response.status_code == 409 and response.json().get("job_id"):
        running = response.json()["job_id"]
        console.print(f"{service}: replay job {running} is already running; following it")
        return ops.call("GET", service, f"/ops/dlq/replay/{running}")
    return ops.checked(service, response)


@dlq_app.command("jobs")
def dlq_jobs(ctx: typer.Context, service: Annotated[str | None, typer.Option()] = None) -> None:
    """The latest "replay all" jobs of every service (or one), with their progress."""
    ops: Ops = ctx.obj
    table = Table("ref", "status", "consumer", "actor", "total", "replayed", "skipped",
                  "remaining", "started", "finished")
    for name in _services(ops, service):
        for j in ops.call("GET", name, "/ops/dlq/replay")["items"]:
            table.add_row(f"{name}:{j['id']}", j["status"], j["consumer"] or "all", j["actor"],
                          str(j["total"]), str(j["replayed"]), str(j["skipped"]),
                          str(j["remaining"]), j["created_at"][:19], (j["finished_at"] or "")[:19])
    console.print(table)


@dlq_app.command("discard")
def dlq_discard(
    ctx: typer.Context,
    ref: str,
    reason: Annotated[str, typer.Option(help="why it is given up (recorded)")],
    actor: Annotated[str, typer.Option(help="who discards (recorded)")] = getpass.getuser(),
) -> None:
    """Give up on a dead letter (SERVICE:ID), saying why."""
    service, letter = _ref(ref)
    ctx.obj.call(
        "POST", service, f"/ops/dlq/{letter}/discard", json={"actor": actor, "reason": reason}
    )
    console.print(f"discarded {ref}")


def _texts(ctx: typer.Context, state: str) -> None:
    page = ctx.obj.call("GET", "notifier", "/ops/texts", params={"state": state})
    table = Table("id", "kind", "due at", "status", "attempts", "reason", "booking")
    for t in page["items"]:
        table.add_row(str(t["id"]), t["kind"], t["due_at"][:19], t["status"], str(t["attempts"]),
                      t["status_reason"] or "", str(t["booking_id"] or ""))
    console.print(table)
    if state == "late" and page["items"]:
        raise typer.Exit(1)


@texts_app.command("pending")
def texts_pending(ctx: typer.Context) -> None:
    """Texts waiting to go out, soonest first."""
    _texts(ctx, "pending")


@texts_app.command("late")
def texts_late(ctx: typer.Context) -> None:
    """Texts past their time and not sent (exits 1 if there are any)."""
    _texts(ctx, "late")


@app.command()
def outbox(ctx: typer.Context) -> None:
    """Events waiting in each service's outbox, by topic, with the last publishing error."""
    ops: Ops = ctx.obj
    table = Table("service", "topic", "waiting", "oldest (s)", "attempts", "last error")
    for name in ops.peers:
        for t in ops.call("GET", name, "/ops/outbox")["topics"]:
            table.add_row(name, t["topic"], str(t["backlog"]), f"{t['oldest_age_seconds']:.0f}",
                          str(t["attempts"]), (t["last_error"] or "")[:60])
    console.print(table)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, service: Annotated[str | None, typer.Option()] = None,
                 since: Annotated[str | None, typer.Option(help="first day (YYYY-MM-DD)")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="print the JSON")] = False,
                 ) -> None:
    """Walk each service's audit hash chains; print the first broken link. Exits 1 when a
    chain is broken or entries are left unsealed."""
    ops: Ops = ctx.obj
    params = {"since": since} if since else {}
    results = [ops.call("GET", name, "/ops/audit/verify", params=params)
               for name in _services(ops, service)]
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    else:
        table = Table("service", "links checked", "chain", "first broken link", "unsealed")
        for r in results:
            broken = r["first_broken"]
            where = (f"{broken['day']} #{broken['seq']} (entry {broken['entry_id']}): "
                     f"{broken['reason']}" if broken else "")
            loose = (f"{r['unsealed']['count']} from entry {r['unsealed']['first_id']}"
                     if r["unsealed"] else "")
            table.add_row(r["service"], str(r["checked"]), "broken" if broken else "ok", where,
                          loose)
        console.print(table)
    raise typer.Exit(0 if all(r["ok"] for r in results) else 1)


def main() -> None:
    app()
