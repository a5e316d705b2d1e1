"""Text templates in English, French and Spanish, and their rendering.

Rules every template follows: no drug, procedure or diagnosis names (HIPAA minimum
necessary: "your appointment", never the treatment; shared/phi_words.py); the clinic's name
and the site's phone number in every text; replies are digits (never CANCEL, which is a
Twilio opt-out word).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_time

from shared.phones import readable
from shared.sms import gsm_fold as gsm_fold  # also for answers
from shared.sms import segments as segments  # the dispatcher's import

LOCALES = {"en": "en_US", "fr": "fr_CA", "es": "es_US"}
DATE_PATTERNS = {"en": "EEE MMM d", "fr": "EEE d MMM", "es": "EEE d 'de' MMM"}

TEMPLATES: dict[str, dict[str, str]] = {
    "confirmation": {
        "en": "{clinic}: your appointment at {site} is on {date} at {time}. Reply 1 to confirm, 2 to reschedule. Questions: {phone}",
        "fr": "{clinic}: votre rendez-vous à {site} est le {date} à {time}. Répondez 1 pour confirmer, 2 pour changer. Questions: {phone}",
        "es": "{clinic}: su cita en {site} es el {date} a las {time}. Responda 1 para confirmar, 2 para cambiarla. Preguntas: {phone}",
    },
    "prep": {
        "en": "{clinic}: your appointment is on {date} at {time}. {fasting} Arrive 30 min early. {bring} {ride} {phone}",
        "fr": "{clinic}: votre rendez-vous est le {date} à {time}. {fasting} Arrivez 30 min avant. {bring} {ride} {phone}",
        "es": "{clinic}: su cita es el {date} a las {time}. {fasting} Llegue 30 min antes. {bring} {ride} {phone}",
    },
    "prep_home": {
        "en": "{clinic}: your appointment at home is on {date} at {time}, by video. {fasting} {bring} No driving for the rest of the day; your support person must be with you. {phone}",
        "fr": "{clinic}: votre rendez-vous à domicile est le {date} à {time}, par vidéo. {fasting} {bring} Ne conduisez pas du reste de la journée; votre accompagnant doit être là. {phone}",
        "es": "{clinic}: su cita en casa es el {date} a las {time}, por video. {fasting} {bring} No conduzca el resto del día; su acompañante debe estar con usted. {phone}",
    },
    "support": {
        "en": "{clinic}: you agreed to be with someone for their appointment at home on {date} at {time}. Stay with them the rest of the day and do not let them drive. To confirm or for questions: {phone}",
        "fr": "{clinic}: vous avez accepté d'accompagner une personne à son rendez-vous à domicile le {date} à {time}. Restez avec elle le reste de la journée; elle ne doit pas conduire. Pour confirmer: {phone}",
        "es": "{clinic}: usted aceptó acompañar a una persona en su cita en casa el {date} a las {time}. Quédese con ella el resto del día y no la deje conducir. Para confirmar: {phone}",
    },
    "confirmation_remote": {
        "en": "{clinic}: your appointment is on {date} at {time}. {join} Reply 1 to confirm, 2 to reschedule. Questions: {phone}",
        "fr": "{clinic}: votre rendez-vous est le {date} à {time}. {join} Répondez 1 pour confirmer, 2 pour changer. Questions: {phone}",
        "es": "{clinic}: su cita es el {date} a las {time}. {join} Responda 1 para confirmar, 2 para cambiarla. Preguntas: {phone}",
    },
    "day_of_remote": {
        "en": "{clinic}: your appointment is today at {time}. {join} Questions: {phone}",
        "fr": "{clinic}: votre rendez-vous est aujourd'hui à {time}. {join} Questions: {phone}",
        "es": "{clinic}: su cita es hoy a las {time}. {join} Preguntas: {phone}",
    },
    "ride_reminder": {
        "en": "{clinic}: for your appointment on {date} at {time} someone must drive you home. Reply 3 when your ride is arranged, or call {phone}.",
        "fr": "{clinic}: pour votre rendez-vous du {date} à {time}, quelqu'un doit vous raccompagner. Répondez 3 quand c'est prévu, ou appelez le {phone}.",
        "es": "{clinic}: para su cita del {date} a las {time} alguien debe llevarlo a casa. Responda 3 cuando lo tenga, o llame al {phone}.",
    },
    "pickup": {
        "en": "{clinic}: your passenger will be ready to go home at {end_time} at {site}, {address}. They must not drive today. Questions: {phone}",
        "fr": "{clinic}: votre passager pourra rentrer à {end_time} à {site}, {address}. Il ne doit pas conduire aujourd'hui. Questions: {phone}",
        "es": "{clinic}: su pasajero estará listo para volver a casa a las {end_time} en {site}, {address}. No debe conducir hoy. Preguntas: {phone}",
    },
    "waitlist_offer": {
        "en": "{clinic}: a spot opened at {site} on {date} at {time}. Reply 4 to take it; the first reply gets it. Questions: {phone}",
        "fr": "{clinic}: une place s'est libérée à {site} le {date} à {time}. Répondez 4 pour la prendre; la première réponse l'obtient. Questions: {phone}",
        "es": "{clinic}: se abrió un lugar en {site} el {date} a las {time}. Responda 4 para tomarlo; la primera respuesta lo obtiene. Preguntas: {phone}",
    },
    "waitlist_taken": {
        "en": "{clinic}: the spot on {date} at {time} has been taken. You stay on the waitlist. Questions: {phone}",
        "fr": "{clinic}: la place du {date} à {time} a été prise. Vous restez sur la liste d'attente. Questions: {phone}",
        "es": "{clinic}: el lugar del {date} a las {time} ya fue tomado. Sigue en la lista de espera. Preguntas: {phone}",
    },
    "missed": {
        "en": "{clinic}: we missed you at your appointment on {date}. Please call {phone} to book a new time.",
        "fr": "{clinic}: nous ne vous avons pas vu à votre rendez-vous du {date}. Appelez le {phone} pour en fixer un autre.",
        "es": "{clinic}: no lo vimos en su cita del {date}. Llame al {phone} para reservar otra.",
    },
    "session_due": {
        "en": "{clinic}: it is time to book your next appointment. Please call {phone}.",
        "fr": "{clinic}: il est temps de prendre votre prochain rendez-vous. Appelez le {phone}.",
        "es": "{clinic}: es momento de reservar su próxima cita. Llame al {phone}.",
    },
    "follow_up_due": {
        "en": "{clinic}: please book your follow-up appointment within the next 2 days. Call {phone}.",
        "fr": "{clinic}: veuillez prendre votre rendez-vous de suivi dans les 2 prochains jours. Appelez le {phone}.",
        "es": "{clinic}: reserve su cita de seguimiento en los próximos 2 días. Llame al {phone}.",
    },
    "fasting_reminder": {
        "en": "{clinic}: reminder for your appointment tomorrow at {time}. {fasting} Questions: {phone}",
        "fr": "{clinic}: rappel pour votre rendez-vous demain à {time}. {fasting} Questions: {phone}",
        "es": "{clinic}: recordatorio de su cita de mañana a las {time}. {fasting} Preguntas: {phone}",
    },
    "day_of": {
        "en": "{clinic}: see you today at {time} at {site}, {address}. Questions: {phone}",
        "fr": "{clinic}: nous vous attendons aujourd'hui à {time} à {site}, {address}. Questions: {phone}",
        "es": "{clinic}: lo esperamos hoy a las {time} en {site}, {address}. Preguntas: {phone}",
    },
}

FASTING: dict[str, dict[str, str]] = {
    "solids_6h_clear_liquids_2h": {
        "en": "No food for 6 h before; clear liquids until 2 h before.",
        "fr": "Ne mangez rien 6 h avant; liquides clairs jusqu'à 2 h avant.",
        "es": "No coma 6 h antes; solo bebidas claras hasta 2 h antes.",
    },
    "food_2h_liquids_30m": {
        "en": "No food for 2 h and no drinks for 30 min before.",
        "fr": "Ne mangez rien 2 h avant et ne buvez rien 30 min avant.",
        "es": "No coma 2 h antes ni beba 30 min antes.",
    },
}

RIDE_ASK = {
    "en": "You cannot drive after it: arrange a ride home and reply 3 when it is set.",
    "fr": "Vous ne pourrez pas conduire après: prévoyez un retour et répondez 3.",
    "es": "No debe conducir después: organice quien lo lleve y responda 3.",
}
"""The prep text's ride ask (`{ride}`): a clinic's own prep text must keep it."""

JOIN: dict[str, dict[str, str]] = {
    "phone": {"en": "By phone: call {link} at that time.",
              "fr": "Par téléphone: appelez le {link} à cette heure.",
              "es": "Por teléfono: llame al {link} a esa hora."},
    "called": {"en": "By phone: we will call you at that time.",
               "fr": "Par téléphone: nous vous appellerons à cette heure.",
               "es": "Por teléfono: le llamaremos a esa hora."},
    "video": {"en": "By video: {link}", "fr": "Par vidéo: {link}", "es": "Por video: {link}"},
    "video_later": {"en": "By video: we will text you the link.",
                    "fr": "Par vidéo: nous vous enverrons le lien par texto.",
                    "es": "Por video: le enviaremos el enlace por mensaje."},
}
"""How a remote visit's texts say to join it (a home session is supervised by video)."""

REMOTE_KINDS = {"confirmation": "confirmation_remote", "day_of": "day_of_remote"}
"""The texts that would name the site or its address, and their remote visits' form (which
carries the call-in number or video link instead, never an address)."""

STOP_NOTICE = {
    "en": " Reply STOP to opt out.",
    "fr": " STOP pour arrêter.",
    "es": " STOP para salir.",
}


class TextContext(NamedTuple):
    """What a text says about its appointment. Names are what texts call the clinic and
    the site (their `sms_name` if set); `phone` is the number patients call: the site's
    (the clinic's for a slot offer from before sites' phones were carried).

    A NamedTuple, as immutable as a frozen dataclass and made for a third of its cost (the
    dispatcher makes one for every text it renders)."""

    language: str | None
    clinic_name: str | None
    phone: str | None
    site_name: str | None
    site_address: str | None
    timezone: str
    starts_at: datetime | None
    """None for a text that names no time (a follow-up: its words quote no date or time)."""
    fasting_rule: str | None
    ends_at: datetime | None = None
    mode: str = "clinic"
    join_link: str | None = None
    prep_items: str | None = None
    """What to bring (the session type's prep items, in the patient's language)."""


def template_kind(kind: str, mode: str) -> str:
    """The template a text of `kind` uses for a visit of `mode`: a remote or home visit's
    texts carry the way to join and no address; a home session's prep its own words."""
    if mode == "clinic":
        return kind
    if mode == "home" and kind == "prep":
        return "prep_home"
    return REMOTE_KINDS.get(kind, kind)


def join_words(mode: str, link: str | None, lang: str) -> str:
    """How the text says to join a remote visit ("" in clinic)."""
    if mode == "phone" and not link:
        return JOIN["called"][lang]
    if mode == "video" and not link:  # an online consultation in a network without a link
        return JOIN["video_later"][lang]
    if mode == "clinic" or not link:
        return ""
    how = "phone" if mode == "phone" else "video"
    return JOIN[how][lang].format(link=readable(link) if link.startswith("+") else link)


_fold_constant = lru_cache(maxsize=None)(gsm_fold)  # templates: folded once


def render(kind: str, ctx: TextContext, *, first_text: bool = False,
           template: str | None = None) -> str:
    """The text of `kind` for `ctx`, in the patient's language (English if unknown): the
    built-in template, or `template` (a clinic's own, checked when it was saved)."""
    lang = ctx.language if ctx.language in LOCALES and ctx.language else "en"
    fasting = _fold_constant(FASTING.get(ctx.fasting_rule or "", {}).get(lang, ""))
    date, start_time, end_time = _local_times(ctx.starts_at, ctx.ends_at, ctx.timezone, lang)
    words = (_fold_constant(TEMPLATES[template_kind(kind, ctx.mode)][lang]) if template is None
             else gsm_fold(template))
    body = fill(words, lang, clinic=ctx.clinic_name, phone=readable(ctx.phone),
                site=ctx.site_name, address=ctx.site_address, date=date, time=start_time,
                end_time=end_time, fasting=fasting,
                join=gsm_fold(join_words(ctx.mode, ctx.join_link, lang)),
                bring=gsm_fold(ctx.prep_items or ""))
    if first_text:
        body += _fold_constant(STOP_NOTICE[lang])
    return gsm_fold(body)


def fill(words: str, lang: str, **values: str | None) -> str:
    """A template's words with its placeholders filled (the ride ask in `lang`), spaces
    left by empty ones closed up."""
    return words.format(ride=_fold_constant(RIDE_ASK[lang]), **values) \
        .replace("  ", " ").replace("..", ".")


def local_times(starts_at: datetime | None, ends_at: datetime | None, timezone: str,
                lang: str) -> tuple[str, str, str]:
    """The date, start time and end time as texts write them in `lang`, in `timezone`."""
    return _local_times(starts_at, ends_at, timezone, lang)


@lru_cache(maxsize=4096)  # appointments share start times: a batch formats each once
def _local_times(starts_at: datetime | None, ends_at: datetime | None, timezone: str,
                 lang: str) -> tuple[str, str, str]:
    """The date, start time and end time as the patient reads them, at the site."""
    tz = ZoneInfo(timezone)
    if starts_at is None:  # no time to quote (the words name none): what babel makes of it
        locale = LOCALES[lang]
        return (gsm_fold(format_datetime(None, DATE_PATTERNS[lang], tzinfo=tz, locale=locale)),
                gsm_fold(format_time(None, "short", tzinfo=tz, locale=locale)),
                gsm_fold(format_time(ends_at, "short", tzinfo=tz, locale=locale)))
    start = starts_at.astimezone(tz)
    end = (ends_at or starts_at).astimezone(tz)
    return _local_date(start, lang), _local_time(start, lang), _local_time(end, lang)


_DATES: dict[tuple[int, int, int, str], str] = {}
_TIMES: dict[tuple[int, int, str], str] = {}
"""Dates and times as texts write them, by the local day, and hour and minute, they show:
formatting is slow (babel), and a burst of texts quotes many appointments but few days
and slots (a few hundred entries at most: days of the year, minutes of the day)."""


def _local_date(local: datetime, lang: str) -> str:
    """`local`'s day as texts write it in `lang` (its pattern names only the day)."""
    key = (local.year, local.month, local.day, lang)
    text = _DATES.get(key)
    if text is None:
        text = _DATES[key] = gsm_fold(format_datetime(local, DATE_PATTERNS[lang],
                                                      tzinfo=local.tzinfo, locale=LOCALES[lang]))
    return text


def _local_time(local: datetime, lang: str) -> str:
    """`local`'s time of day as texts write it in `lang` (the locale's short time: hour and
    minute)."""
    key = (local.hour, local.minute, lang)
    text = _TIMES.get(key)
    if text is None:
        text = _TIMES[key] = gsm_fold(format_time(local, "short", tzinfo=local.tzinfo,
                                                  locale=LOCALES[lang]))
    return text
