"""The exact wording a visitor agrees to on the public booking page (TCPA prior express
consent), by version and language. The page shows it next to its checkbox; booking stores
the version with the time, the address and the browser (services/booking/online.py). A new
wording is a new version: never change one that was shown."""

from __future__ import annotations

ONLINE_CONSENT_VERSION = "online-2026-12"

ONLINE_CONSENT: dict[str, dict[str, str]] = {
    ONLINE_CONSENT_VERSION: {
        "en": ("I agree that {clinic} may text this mobile number about my appointments "
               "(a verification code now, then confirmations and reminders). Message and data "
               "rates may apply. Reply STOP to stop, HELP for help. Consent is not a condition "
               "of care."),
        "fr": ("J'accepte que {clinic} envoie des textos à ce numéro mobile au sujet de mes "
               "rendez-vous (un code de vérification maintenant, puis confirmations et rappels). "
               "Des frais de messagerie peuvent s'appliquer. Répondez ARRET pour arrêter, AIDE "
               "pour de l'aide. Ce consentement n'est pas une condition des soins."),
        "es": ("Acepto que {clinic} envíe mensajes de texto a este número móvil sobre mis citas "
               "(un código de verificación ahora, luego confirmaciones y recordatorios). Pueden "
               "aplicarse tarifas de mensajes y datos. Responda ALTO para dejar de recibirlos, "
               "AYUDA para ayuda. El consentimiento no es una condición de la atención."),
    },
}


def consent_wording(version: str, language: str, clinic: str) -> str:
    """The wording of `version` in `language` (en, fr, es), naming the clinic."""
    return ONLINE_CONSENT[version][language].format(clinic=clinic)
