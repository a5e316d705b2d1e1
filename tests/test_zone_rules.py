"""Python's time zone rules against PostgreSQL's (real PostgreSQL): where they differ, local
days worked out in SQL and in Python would disagree, so the ops status names the zones."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.ops_status import StatusReport
from shared.zones import ZoneRulesProbe, allowed_zones, disagreements

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


async def test_the_embedded_postgresql_agrees_with_the_tzdata_package_on_every_allowed_zone(db):
    assert len(allowed_zones()) > 40
    assert await disagreements(db, now=NOW) == []


async def test_a_zone_postgresql_does_not_know_is_named_as_differing(db):
    assert await disagreements(db, ["America/Vancouver", "Mars/Olympus_Mons"], now=NOW) == [
        "Mars/Olympus_Mons"]


async def test_a_difference_is_a_problem_in_the_ops_status(db, monkeypatch):
    async def differ(conn, zones=None, now=None):
        return ["America/Vancouver"]

    monkeypatch.setattr("shared.zones.disagreements", differ)
    report = StatusReport("booking")
    await ZoneRulesProbe()(db, report)
    assert report.sections["time_zone_rules"] == {"differ_from_postgresql": ["America/Vancouver"]}
    assert report.problems == [
        "time zone rules differ between the service and PostgreSQL for America/Vancouver: "
        "update the tzdata package or PostgreSQL"]
