"""Names people read for the codes the services use (translated where they are shown)."""

from typing import Any

from services.console.i18n import N_

ROLES = {"admin": N_("admin"), "scheduler": N_("scheduler"), "clinician": N_("clinician"),
         "ops": N_("ops"), "read-only": N_("read-only"), "privacy": N_("privacy officer")}
OUTCOMES = {"allowed": N_("allowed"), "refused": N_("refused"), "not_found": N_("not found"),
            "failed": N_("failed")}
OUTCOME_TONE = {"allowed": "ok", "refused": "bad", "not_found": "warn", "failed": "warn"}
SESSION_TYPES = {
    "assessment": N_("Assessment"), "preparation": N_("Preparation"),
    "integration": N_("Integration"), "iv_infusion": N_("IV infusion"),
    "im_injection": N_("IM injection"), "esketamine_nasal": N_("Esketamine nasal spray"),
    "oral_lozenge_kap": N_("Lozenge (KAP)"), "consultation": N_("Consultation"),
    "home_low_dose": N_("At-home session"),
}
MODES = {"clinic": N_("In clinic"), "phone": N_("By phone"), "video": N_("By video"),
         "home": N_("At home")}
"""How a session is attended: the day sheet lists visits that take no room under these."""
STATUSES = {"booked": N_("Booked"), "arrived": N_("Checked in"), "fulfilled": N_("Completed"),
            "cancelled": N_("Cancelled"), "noshow": N_("No-show")}
STATUS_TONE = {
    "booked": "",
    "arrived": "ok",
    "fulfilled": "ok",
    "cancelled": "bad",
    "noshow": "bad",
}
RIDES = {"unknown": N_("not asked"), "requested": N_("asked"), "confirmed": N_("arranged")}
TEXT_KINDS = {
    "confirmation": N_("Confirmation"), "prep": N_("Prep"), "ride_reminder": N_("Ride reminder"),
    "fasting_reminder": N_("Fasting"), "day_of": N_("Day-of reminder"), "pickup": N_("Pickup"),
    "missed": N_("Missed session"), "session_due": N_("Time to book"),
    "follow_up_due": N_("Follow-up nudge"), "waitlist_offer": N_("Slot offer"),
    "waitlist_taken": N_("Slot taken"), "support": N_("Support person"),
}
TEXT_STATES = {"delivered": N_("delivered"), "sent": N_("sent"), "failed": N_("failed"),
               "scheduled": N_("scheduled"), "not_sent": N_("not sent")}
TEXT_TONE = {"delivered": "ok", "sent": "ok", "failed": "bad", "scheduled": "", "not_sent": "warn"}
PLAN_PHASES = {"assessment": N_("assessment"), "induction": N_("induction"),
               "maintenance": N_("maintenance"), "completed": N_("completed"),
               "discontinued": N_("discontinued")}
REPLY_MEANINGS = {
    "confirm": N_("confirmed"),
    "reschedule": N_("asked for another time"),
    "ride": N_("ride arranged"),
    "take_slot": N_("took the offered slot"),
    "opt_out": N_("opted out"),
    "opt_in": N_("opted back in"),
    "help": N_("asked for help"),
    "other": N_("to read"),
}
WEEKDAYS = {1: N_("Monday"), 2: N_("Tuesday"), 3: N_("Wednesday"), 4: N_("Thursday"),
            5: N_("Friday"), 6: N_("Saturday"), 7: N_("Sunday")}


def text_state(text: dict[str, Any]) -> str:
    """A text's state as staff see it: delivered, sent, failed, scheduled or not sent."""
    if text.get("delivery") == "delivered":
        return "delivered"
    if text.get("status") == "failed" or text.get("delivery") in ("undelivered", "failed"):
        return "failed"
    if text.get("status") == "sent":
        return "sent"
    if text.get("status") in ("pending", "sending"):
        return "scheduled"
    return "not_sent"
