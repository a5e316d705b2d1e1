"""What the notifier answers, in its TwiML reply, to a text from a patient or a stranger:
HELP (always: who sends these texts, how to reach a person, how to stop), and the one
confirmation of an opt-out or opt-in Twilio does not give itself (words other than its
own keywords). In English, French or Spanish, kept to GSM-7, one segment at most."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from services.notifier.templates import gsm_fold
from shared.phones import readable

ANSWERS: dict[str, dict[str, str]] = {
    "help": {
        "en": "{who}: appointment texts. For help call {phone}. Reply STOP to opt out.",
        "fr": "{who}: textos de rendez-vous. Aide: appelez le {phone}. Répondez ARRET pour ne plus en recevoir.",
        "es": "{who}: mensajes de citas. Ayuda: llame al {phone}. Responda ALTO para no recibir más.",
    },
    "help_no_phone": {
        "en": "{who}: appointment texts. For help call your clinic. Reply STOP to opt out.",
        "fr": "{who}: textos de rendez-vous. Aide: appelez votre clinique. Répondez ARRET pour ne plus en recevoir.",
        "es": "{who}: mensajes de citas. Ayuda: llame a su clínica. Responda ALTO para no recibir más.",
    },
    "opt_out": {
        "en": "{who}: you will get no more texts from this number. Reply START to get them again.",
        "fr": "{who}: vous ne recevrez plus de textos de ce numéro. Répondez START pour les recevoir de nouveau.",
        "es": "{who}: no recibirá más mensajes de este número. Responda START para recibirlos de nuevo.",
    },
    "opt_in": {
        "en": "{who}: you will get texts from this number again. Reply STOP to opt out.",
        "fr": "{who}: vous recevrez de nouveau nos textos. Répondez ARRET pour ne plus en recevoir.",
        "es": "{who}: recibirá de nuevo nuestros mensajes. Responda ALTO para no recibir más.",
    },
}


@dataclass(frozen=True)
class Sender:
    """Who the answer speaks for: a clinic network (its name and phone) or, when the number
    is not one network's, the sender itself (the notifier's settings)."""

    name: str
    phone: str | None


def answer(kind: str, sender: Sender, language: str) -> str:
    """The answer of `kind` (help, opt_out, opt_in) for `sender`, in `language`."""
    lang = language if language in ("en", "fr", "es") else "en"
    if kind == "help" and not sender.phone:
        kind = "help_no_phone"
    phone = readable(sender.phone) if sender.phone else ""  # help_no_phone, or not quoted
    return gsm_fold(ANSWERS[kind][lang].format(who=sender.name, phone=phone))


def twiml(message: str | None) -> str:
    """A TwiML response sending `message` back to whoever texted us (nothing if None)."""
    body = f"<Message>{escape(message)}</Message>" if message else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
