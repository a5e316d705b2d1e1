"""Plans count at-home supervised dosing sessions like any dosing session: the KAP template
allows them (issue 17)."""

from __future__ import annotations

from tests.plan_helpers import Patient, days_ago
from tests.test_plans import apply, module_plans, own_plans, plans, the_plan  # noqa: F401 (fixtures)


async def test_kap_counts_home_sessions_like_its_clinic_dosing_sessions(plans):
    pat = Patient()
    stream = []
    for i in range(3):
        stream += pat.attend("preparation", days_ago(40 - i), dosing=False)
    stream += pat.attend("oral_lozenge_kap", days_ago(30))
    stream += pat.attend("integration", days_ago(29), dosing=False)
    await apply(plans, *stream)
    plan = await the_plan(plans, pat)
    assert (plan["template"], plan["template_version"]) == ("kap", 2)
    assert plan["sessions_completed"] == 1
    home = pat.attend("home_low_dose", days_ago(20))
    await apply(plans, *home, *pat.attend("integration", days_ago(19), dosing=False))
    plan = await the_plan(plans, pat)
    assert plan["sessions_completed"] == 2 and plan["phase"] == "induction"
    await apply(plans, *pat.attend("home_low_dose", days_ago(10)),
                *pat.attend("integration", days_ago(9), dosing=False))
    plan = await the_plan(plans, pat)
    assert plan["sessions_completed"] == 3 and plan["phase"] == "completed"
    sessions = await plans.runtime.db.fetch(
        "SELECT session_type FROM plan_sessions WHERE plan_id = $1 AND is_dosing "
        "ORDER BY starts_at", plan["id"])
    assert [s["session_type"] for s in sessions] == ["oral_lozenge_kap", "home_low_dose",
                                                     "home_low_dose"]


async def test_a_first_home_session_starts_a_kap_plan_that_counts_it(plans):
    pat = Patient()
    await apply(plans, *pat.attend("home_low_dose", days_ago(5)))
    plan = await the_plan(plans, pat)
    assert plan["template"] == "kap" and plan["modality"] == "oral_lozenge_kap"
    assert plan["sessions_completed"] == 1
