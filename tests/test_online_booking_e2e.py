"""Online consultation booking end to end, in headless Chromium against the whole system
running as processes (the Twilio-compatible server included): a visitor opens the network's
public page, picks a time in their own time zone, fills in the form, reads the code the
notifier texted through the local Twilio server, books with it and gets the confirmation
text (reply 2 to change it); a scheduler sees the consultation on the day sheet and as a new
lead in the attention inbox. The pages carry no script (they work without JavaScript) and
axe-core finds no serious or critical violation on any of them, in English, French and
Spanish."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from devstack.demo import load_staff, texts_to, wait_for
from devstack.embedded import free_port
from devstack.stack import Stack
from tests.test_console_e2e import Browser, chrome, pytestmark  # noqa: F401 (slow)

VISITOR_NUMBER = "+16045550199"


def run_scenario(infra, namespace, tmp_path) -> dict:
    names = ("booking", "plans", "notifier", "console")
    env = {"DATABASE_URL": infra.database_url, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
           "KAFKA_TOPIC_PREFIX": f"{namespace}.", "KAFKA_SESSION_TIMEOUT_MS": "2000",
           "KAFKA_HEARTBEAT_INTERVAL_MS": "300", "NOTIFIER_QUIET_HOURS_START": "24",
           "NOTIFIER_QUIET_HOURS_END": "0",
           **{f"{s.upper()}_DB_SCHEMA": f"{namespace}_{s}" for s in names}}
    ports = {name: free_port() for name in names}
    out: dict = {}
    with Stack(data_dir=tmp_path, ports=ports, env=env, quiet=True, twilio=True) as stack:
        network = stack.load_demo_network()
        slug = network["clinic"]["slug"]
        scheduler = load_staff(stack.url("booking"), network["api_key"], tmp_path / "staff.json")["scheduler"]
        driver = chrome()
        me = Browser(driver, stack.url("console"))
        try:
            # the visitor: the page in their time zone, without any script
            me.open(f"/book/{slug}?lang=en")
            out["scripts"] = len(driver.find_elements(By.TAG_NAME, "script"))
            Select(me.find("#tz")).select_by_value("America/Toronto")
            me.find("form[method=get] button[type=submit]").click()
            me.wait.until(lambda d: "tz=America%2FToronto" in d.current_url)
            me.check("online-book")
            first = me.find("#slot-0")
            out["slot"] = first.get_attribute("value")
            out["slot_label"] = me.find("label[for=slot-0]").text
            me.find("label[for=slot-0]").click()
            me.find("label[for=mode-video]").click()
            me.type("#given_name", "Jordan")
            me.type("#family_name", "Reyes")
            me.type("#phone", "604 555 0199")
            Select(me.find("#language")).select_by_value("en")
            out["consent"] = me.find("[data-testid=consent-wording]").text
            me.find("label[for=consent]").click()
            me.check("online-book-filled")
            me.find("#book-online button[type=submit]").click()
            me.wait.until(lambda d: "/code/" in d.current_url)
            me.check("online-book-code")
            # the code, as the local Twilio server received it from the notifier
            codes = wait_for(lambda: texts_to(stack.twilio_server.url, VISITOR_NUMBER), bool, timeout=60)
            out["code_text"] = codes[0]
            code = re.search(r"\b\d{6}\b", codes[0]).group(0)
            me.type("#code", code)
            me.find("form[action*='/code/'] button[type=submit]").click()
            me.until_text("Your consultation is booked")
            out["booked_when"] = me.find("[data-testid=booked-when]").text
            me.check("online-book-done")

            # the confirmation text follows, with reply 2 to change it
            texts = wait_for(lambda: texts_to(stack.twilio_server.url, VISITOR_NUMBER),
                             lambda t: len(t) >= 2, timeout=60)
            out["confirmation"] = texts[1]

            # the same page in French and Spanish
            for lang in ("fr", "es"):
                me.open(f"/book/{slug}?lang={lang}")
                out[f"heading_{lang}"] = me.find("h1").text
                me.check(f"online-book-{lang}")

            # staff: the day sheet and the new lead
            auth = {"X-API-Key": network["api_key"]}
            booked = httpx.get(f"{stack.url('booking')}/bookings", headers=auth, timeout=10,
                               params={"status": "booked"}).json()["items"]
            [online] = [b for b in booked if b["source"] == "online"]
            out["booking"] = {k: online[k] for k in ("mode", "room_id", "session_type", "starts_at")}
            me.sign_in(scheduler["email"], scheduler["password"])
            me.open(f"/day?site={online['site_id']}&date={online['starts_at_local'][:10]}")
            row = me.find(f"tr[data-booking='{online['id']}']")
            out["sheet_row"] = row.text
            me.check("online-day-sheet")
            me.open("/inbox")
            lead = me.find("[data-item=lead]")
            out["lead"] = lead.text
            me.check("online-inbox-lead")
            lead.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            me.until_text("Done.")
            out["leads_after"] = len(driver.find_elements(By.CSS_SELECTOR, "[data-item=lead]"))
            out["violations"] = me.violations
        finally:
            driver.quit()
    return out


async def test_a_visitor_books_a_consultation_online_in_chromium(infra, namespace, tmp_path):
    out = await asyncio.to_thread(run_scenario, infra, namespace, tmp_path)
    assert out["scripts"] == 0
    local = datetime.fromisoformat(out["slot"]).astimezone(__import__("zoneinfo").ZoneInfo("America/Toronto"))
    assert out["slot_label"].replace("\u202f", " ") == local.strftime("%-I:%M %p")
    assert out["consent"].startswith("I agree that Cedar Grove Clinics may text this mobile number")
    assert re.fullmatch(r"Cedar Grove Clinics: your code is \d{6}\. It expires in 10 minutes\. "
                        r"If you did not ask for it, ignore this text\.", out["code_text"])
    assert "Eastern Standard Time" in out["booked_when"]
    assert out["confirmation"].startswith("Cedar Grove Clinics: your appointment is on ")  # by video
    assert f' at {local.strftime("%-I:%M %p")}.' in out["confirmation"]  # the visitor's Toronto time
    assert "Reply 1 to confirm, 2 to reschedule." in out["confirmation"]
    assert out["booking"]["mode"] == "video" and out["booking"]["room_id"] is None
    assert out["booking"]["session_type"] == "consultation"
    assert datetime.fromisoformat(out["booking"]["starts_at"]) == datetime.fromisoformat(out["slot"])
    assert "Jordan Reyes" in out["sheet_row"] and "By video" in out["sheet_row"]
    assert "<span" not in out["sheet_row"], "the chips are HTML, not text"
    assert "booked online" in out["sheet_row"]
    assert "Jordan Reyes" in out["lead"] and out["leads_after"] == 0
    assert out["heading_fr"] == "Prenez une consultation gratuite de 15 minutes"
    assert out["heading_es"] == "Reserve una consulta gratuita de 15 minutos"
    assert {page: v for page, v in out["violations"].items() if v} == {}, json.dumps(out["violations"])
    assert len(out["violations"]) == 8
