"""What clinics type goes into texts, so it is checked: names, display names (`sms_name`)
and addresses never name a drug, procedure or diagnosis, are GSM-7 once accents are folded
and are capped so that every text stays within 3 segments; texts about a site quote the
site's phone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import product
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.booking.commands import AddClinic, AddSite
from services.notifier.templates import FASTING, TEMPLATES, TextContext, render
from shared.phi_words import phi_words_in
from shared.sms import (
    ADDRESS_MAX,
    CLINIC_NAME_MAX,
    JOIN_LINK_MAX,
    PHONE_MAX,
    PREP_ITEMS_MAX,
    SITE_NAME_MAX,
    gsm_fold,
    segments,
    septets,
    text_field_problem,
)
from tests.conftest import ADMIN_TOKEN, eventually
from tests.helpers import add_patient, create_network
from tests.test_booking_rules import next_local
from tests.test_spine import listing

# --- the list of words ----------------------------------------------------------------


@pytest.mark.parametrize("text, words", [
    ("Bayside Ketamine & Spravato Infusions", ["ketamine", "spravato", "infusions"]),
    ("KETAMINE WELLNESS", ["ketamine"]),
    ("Ketamine-Assisted Therapy", ["ketamine", "therapy"]),
    ("Clinique de kétamine", ["ketamine"]),
    ("ESKÉTAMINE Montréal", ["esketamine"]),
    ("ＫＥＴＡＭＩＮＥ Ｃｌｉｎｉｃ", ["ketamine"]),  # full-width letters
    ("Centro de Infusión Latina", ["infusion"]),
    ("Clinique de perfusion", ["perfusion"]),
    ("Inyecciones del Valle", ["inyecciones"]),
    ("Psychothérapie assistée", ["psychotherapie"]),
    ("Clínica de tratamiento de la depresión", ["tratamiento", "depresion"]),
    ("Depression & Anxiety Care", ["depression", "anxiety"]),
    ("Bayside PTSD Center", ["ptsd"]),
    ("Nasal Spray Lounge", ["nasal", "spray"]),
    ("IV Lounge", ["iv"]),
    ("I.V. Lounge", ["iv"]),
    ("Bayside i.m. shots", ["im"]),
    ("KAP Collective", ["kap"]),
    ("Low Dose Clinic", ["dose"]),
])
def test_drug_procedure_and_diagnosis_words_are_found_whatever_their_case_and_accents(text, words):
    assert phi_words_in(text) == words


@pytest.mark.parametrize("text", [
    "Endeavour Clinic", "Ivy Street", "Imperial Avenue", "Cedar Grove Clinics",
    "Dos Ríos Salud", "Sprayberry Road", "Kapolei Medical Park", "Pacific Psychiatry",
    "Bayside Integrative Medicine", "Sœur Thérèse", "St. Thomas", "Île-des-Sœurs",
    "300 Broadway, New York NY", "Clinique Santé Mentale", "Traditional Wellness",
])
def test_ordinary_names_pass(text):
    assert phi_words_in(text) == []


def test_iv_and_im_may_be_roman_numerals_in_an_address_but_not_in_a_name():
    assert phi_words_in("2450 Boulevard Henri-IV, Quebec QC", address=True) == []
    assert phi_words_in("Henri IV Clinic") == ["iv"]
    assert phi_words_in("Infusion Suite 4, 1 Main St", address=True) == ["infusion"]


# --- folding and checking one field -----------------------------------------------------


def test_accents_are_folded_to_gsm7_and_letters_already_in_it_stay():
    assert gsm_fold("Îles-de-la-Madeleine") == "Iles-de-la-Madeleine"
    assert gsm_fold("Cœur de Saint-Jérôme «Nord»") == 'Coeur de Saint-Jérome "Nord"'
    assert gsm_fold("Peñasco Ñuñoa Zürich Ærø") == "Peñasco Ñuñoa Zürich Ærø"
    assert gsm_fold("Ÿvonne Łódź") == "Yvonne Lodz"
    assert gsm_fold("東京 Clinic") == "東京 Clinic"  # no GSM-7 form: left for the check to refuse


def test_septets_count_extension_characters_twice_and_refuse_what_is_not_gsm7():
    assert septets("Cedar Grove") == 11
    assert septets("[Cedar] €") == 12
    assert septets("東京") is None
    assert septets("Cedar\nGrove") == 11  # a line break is GSM-7; a tab and "`" are not
    assert septets("Cedar\tGrove") is None
    assert septets("Cedar `Grove`") is None


def test_a_field_is_refused_for_characters_texts_cannot_carry_for_phi_and_for_length():
    assert text_field_problem("Cedar Grove", 40) is None
    assert text_field_problem("Clinique Île-Perrot Santé", 40) is None
    assert "characters a text cannot carry" in text_field_problem("Clinic 😀", 40)
    assert "characters a text cannot carry" in text_field_problem("東京 Clinic", 40)
    assert "characters a text cannot carry" in text_field_problem("Cedar\nGrove", 40)
    assert text_field_problem("Ketamine Care", 40) == (
        "names a drug, procedure or diagnosis (ketamine), which texts must never carry")
    assert text_field_problem("W" * 40, 40) is None
    assert "at most 40 characters" in text_field_problem("W" * 41, 40)
    assert "at most 40 characters" in text_field_problem("€" * 21, 40)  # 42 septets


def test_the_caps_hold_real_names_and_addresses():
    assert text_field_problem("Pacific Northwest Wellness Group", CLINIC_NAME_MAX) is None  # 32
    assert text_field_problem("Côte-des-Neiges–Notre-Dame-de-Grâce", SITE_NAME_MAX) is None
    assert text_field_problem(
        "1200 Boulevard René-Lévesque Ouest, Bureau 1500, Montréal, QC H3B 4W8", ADDRESS_MAX,
        address=True) is None
    assert text_field_problem("+1 (604) 555-0142 ext. 1234", PHONE_MAX) is None


def test_the_booking_api_refuses_phones_longer_than_texts_allow_for():
    """Texts quote the clinic's and sites' phones: the worst case below counts on the API
    refusing longer ones."""
    with pytest.raises(ValidationError):
        AddClinic(name="Cedar Grove", phone="1" * (PHONE_MAX + 1))
    with pytest.raises(ValidationError):
        AddSite(name="Main", address="1 Main St", phone="1" * (PHONE_MAX + 1),
                timezone="America/Vancouver")


# --- the worst case ---------------------------------------------------------------------


def _longest_local_moment(lang: str, tz: ZoneInfo) -> datetime:
    """The start whose date and time, as texts write them in `lang`, are the longest: the
    day of a leap year and the minute of a day that give the longest "missed" text (it
    quotes the date) and "fasting_reminder" text (it quotes the time)."""
    def body(kind, moment):
        return render(kind, TextContext(lang, "C", "1", "S", "A", tz.key, moment, None))
    noon = [datetime.combine(date(2028, 1, 1) + timedelta(days=d), time(12), tz) for d in range(366)]
    day = max(noon, key=lambda m: len(body("missed", m))).date()
    minutes = [datetime.combine(day, time(h, m), tz) for h in range(24) for m in range(60)]
    return max(minutes, key=lambda m: len(body("fasting_reminder", m)))


def test_the_longest_dates_and_times_the_locales_write_are_the_ones_the_worst_case_uses():
    tz = ZoneInfo("America/Vancouver")
    en, fr, es = (_longest_local_moment(lang, tz) for lang in ("en", "fr", "es"))
    assert render("missed", TextContext("en", "C", "1", "S", "A", tz.key, en, None)).startswith(
        "C: we missed you at your appointment on Mon Jan 10.")
    assert render("fasting_reminder", TextContext("en", "C", "1", "S", "A", tz.key, en, None)) \
        .startswith("C: reminder for your appointment tomorrow at 12:00 AM.")
    assert "du lun. 10 juill." in render("missed", TextContext("fr", "C", "1", "S", "A", tz.key, fr, None))
    assert "demain à 00 h 00" in render("fasting_reminder", TextContext("fr", "C", "1", "S", "A", tz.key, fr, None))
    assert "del lun 10 de ene. " in render("missed", TextContext("es", "C", "1", "S", "A", tz.key, es, None))
    assert "a las 12:00 a.m." in render("fasting_reminder", TextContext("es", "C", "1", "S", "A", tz.key, es, None))


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_every_text_stays_within_3_segments_with_every_field_at_its_cap(lang):
    tz = ZoneInfo("America/Vancouver")
    starts = _longest_local_moment(lang, tz)
    link = "https://" + "W" * (JOIN_LINK_MAX - len("https://"))
    for kind in TEMPLATES:
        for rule, mode in product((None, *FASTING), ("clinic", "phone", "video", "home")):
            ctx = TextContext(lang, "W" * CLINIC_NAME_MAX, "9" * PHONE_MAX, "W" * SITE_NAME_MAX,
                              "W" * ADDRESS_MAX, tz.key, starts, rule,
                              ends_at=starts,  # the pickup time: as long as the start's
                              mode=mode, join_link=link, prep_items="W" * PREP_ITEMS_MAX)
            body = render(kind, ctx, first_text=True)
            assert "W" * CLINIC_NAME_MAX in body and "9" * PHONE_MAX in body
            assert segments(body) <= 3, (kind, rule, mode, len(body), body)


def test_remote_visits_texts_carry_the_link_and_never_the_address():
    tz = "America/Vancouver"
    starts = datetime(2026, 12, 9, 17, 0, tzinfo=UTC)  # 10:00 in Vancouver (UTC-7 all year from 2026)
    for kind in ("confirmation", "day_of"):
        ctx = TextContext("en", "Cedar", "+16045550101", "Main", "1 Main St", tz, starts, None,
                          mode="video", join_link="https://meet.example.com/c-1")
        body = render(kind, ctx)
        assert "By video: https://meet.example.com/c-1" in body and "1 Main St" not in body
        assert "Main" not in body.replace("Main St", "")
    phone = TextContext("fr", "Cedar", "+16045550101", "Main", "1 Main St", tz, starts, None,
                        mode="phone", join_link="+16045550150")
    assert render("confirmation", phone) == (
        "Cedar: votre rendez-vous est le mer. 9 déc. à 10 h 00. Par téléphone: appelez le "
        "(604) 555-0150 à cette heure. Répondez 1 pour confirmer, 2 pour changer. Questions: "
        "(604) 555-0101")
    called = TextContext("en", "Cedar", "+16045550101", "Main", "1 Main St", tz, starts, None,
                         mode="phone")  # no number to call: the clinic calls
    assert "By phone: we will call you at that time." in render("day_of", called)


# --- through the APIs -------------------------------------------------------------------


async def test_a_clinic_named_for_its_drugs_is_refused_naming_the_field_not_echoing_it(booking):
    r = await booking.http.post("/clinics", headers={"X-Admin-Token": ADMIN_TOKEN}, json={
        "name": "Bayside Ketamine & Spravato Infusions", "phone": "+1 604 555 0100"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "name"
    assert r.json()["message"] == (
        "name names a drug, procedure or diagnosis (ketamine, spravato, infusions), which texts "
        "must never carry; or give an sms_name, a short name for texts")
    assert "Bayside" not in r.text
    r = await booking.http.post("/clinics", headers={"X-Admin-Token": ADMIN_TOKEN}, json={
        "name": "Bayside", "sms_name": "Bayside Ketamine", "phone": "+1 604 555 0100"})
    assert r.status_code == 422 and r.json()["field"] == "sms_name"
    r = await booking.http.post("/clinics", headers={"X-Admin-Token": ADMIN_TOKEN}, json={
        "name": "Pacific Northwest Wellness and Recovery Group", "phone": "+1 604 555 0100"})
    assert r.status_code == 422 and r.json()["field"] == "name"
    assert "at most 40 characters" in r.json()["message"]


async def test_site_names_and_addresses_that_texts_cannot_carry_are_refused(booking):
    net = await create_network(booking.http)
    site = {"name": "Downtown", "address": "1 Main St", "phone": "+1 604 555 0102",
            "timezone": "America/Vancouver"}
    for field, value, expected in [
            ("address", "Infusion Suite 4, 100 Main St", "address names a drug, procedure or diagnosis (infusion)"),
            ("address", "1 Main St 🏥", "address has characters a text cannot carry"),
            ("name", "Spravato Suite", "name names a drug, procedure or diagnosis (spravato)"),
            ("sms_name", "IV Bar", "sms_name names a drug, procedure or diagnosis (iv)")]:
        r = await booking.http.post("/sites", headers=net.headers, json={**site, field: value})
        assert r.status_code == 422, (field, r.text)
        assert r.json()["field"] == field and r.json()["message"].startswith(expected)
        assert value not in r.text
    r = await booking.http.post("/sites", headers=net.headers, json={**site, "address": "W" * 101})
    assert r.status_code == 422 and r.json()["fields"][0]["path"] == "body.address"
    r = await booking.http.post("/sites", headers=net.headers, json={
        **site, "name": "Henri IV Ketamine Suite", "sms_name": "Quebec",
        "address": "2450 Boulevard Henri-IV, Quebec QC"})
    assert r.status_code == 201, r.text
    assert r.json()["sms_name"] == "Quebec"
    sites = (await booking.http.get("/sites", headers=net.headers)).json()["items"]
    assert [(s["name"], s["sms_name"]) for s in sites] == [("Main", None), ("Henri IV Ketamine Suite", "Quebec")]


async def test_texts_use_the_display_names_and_quote_the_sites_own_phone(spine):
    """A Vancouver network named for its drugs texts as "Bayside"; its New York site's texts
    (a slot offer too) quote the New York number, never the Vancouver one."""
    net = await create_network(
        spine.booking.http, name="Bayside Ketamine & Spravato Infusions",
        clinic={"sms_name": "Bayside"}, timezone="America/New_York",
        site={"name": "Manhattan Ketamine Suite", "sms_name": "Manhattan",
              "phone": "+1 212 555 0103", "address": "300 Broadway, New York NY"})
    waiting = await add_patient(spine.booking.http, net, given_name="Wait", phone="604-555-0188")
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": next_local("America/New_York", days=6)})
    assert r.status_code == 201, r.text
    booked = r.json()

    async def texts(patient, kind):
        items = await listing(spine.notifier.http, f"/patients/{patient['id']}/texts", net.headers)
        return [t["body"] for t in items if t["kind"] == kind and t["status"] == "sent"]

    [confirmation] = await eventually(lambda: texts(net.patient, "confirmation"))
    assert confirmation.startswith("Bayside: your appointment at Manhattan is on ")
    assert confirmation.endswith(" at 10:00 AM. Reply 1 to confirm, 2 to reschedule. "
                                 "Questions: (212) 555-0103 Reply STOP to opt out.")
    start = datetime.fromisoformat(booked["starts_at"])
    r = await spine.booking.http.post("/waitlist", headers=net.headers, json={
        "patient_id": waiting["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "window_start": (start - timedelta(days=1)).isoformat(),
        "window_end": (start + timedelta(days=1)).isoformat()})
    assert r.status_code == 201, r.text
    r = await spine.booking.http.post(f"/bookings/{booked['id']}/cancel", headers=net.headers,
                                      json={"reason": "moved away"})
    assert r.status_code == 200, r.text
    [offer] = await eventually(lambda: texts(waiting, "waitlist_offer"))
    assert offer.startswith("Bayside: a spot opened at Manhattan on ")
    assert "Questions: (212) 555-0103" in offer
    for body in (confirmation, offer):
        assert phi_words_in(body) == [] and "(604) 555-0100" not in body
    rows = await spine.notifier.runtime.db.fetch("SELECT body FROM recorded_sms")
    assert rows and all("Ketamine" not in r["body"] for r in rows)
