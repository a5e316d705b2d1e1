"""Revoking consent in plain words. FCC 24-24 (in force since 2025-04-11): a person may
revoke consent to texts by any reasonable means, and replies such as "stop texting me",
"don't text me" or "remove me" count. So does the French and Spanish of our patients
("ne m'envoyez plus de messages", "dejen de escribirme").

Conservative by design: a text is a revocation only if one of its clauses (split at . ! ? ; ,
and line breaks) is, from its first word to its last, one of the phrases below, made of a
verb of stopping and a closed list of words about texts ("me", "these", "messages",
"anymore", "please"). "Stop texting me, thanks" and "No more texts" count; "can't stop
smiling, see you tomorrow", "stop by the front desk?", "no more texts after 8pm please" and
"remove me from the wait list" do not (the last two are for staff to read, as is every text
that is not a defined reply). A clause is compared folded: lower case, accents removed,
apostrophes and other punctuation as spaces ("don't" is "don t", "m'écrire" "m ecrire").
"""

from __future__ import annotations

import re
import unicodedata

_EN_NOUN = r"(?:texts?|txts?|text messages?|messages?|msgs?|sms|reminders?|notifications?|alerts?)"
_EN_MORE = (r"(?: (?:me|us|my|this|that|these|those|the|your|all|any|of|to|number|phone|"
            r"anything|anymore|any more|again|ever|now|already|please|pls|plz|thanks|thank you|"
            r"thx|ok|okay|asap|" + _EN_NOUN[3:-1] + r"))*")
_EN_LIST = (r"(?: (?:the|this|your|ur|all|these|my))?(?: (?:text|texting|sms|messaging|mailing|"
            r"contact|reminder))? (?:list|lists|texts|messages|reminders|system)")
_EN_NOT = r"(?:dont|don t|do not|never|please dont|please don t|please do not)"
ENGLISH = [
    r"(?:stop|quit|cease) (?:texting|txting|messaging|contacting|sending|spamming|bothering)",
    _EN_NOT + r"(?: ever)? (?:text|txt|message|msg|sms|contact|send)",
    r"no more " + _EN_NOUN,
    r"(?:i )?(?:dont|don t|do not) want (?:any )?(?:more |these |this |those |your |them)"
    + r"(?:" + _EN_NOUN + r")?",
    r"(?:i )?(?:want to |wanna |would like to |d like to )?(?:unsubscribe|opt out|opt me out)",
    r"(?:i )?(?:want to |wanna |would like to |d like to )?stop (?:receiving|getting) " + _EN_NOUN,
    r"(?:remove|delete) (?:me|my number|this number)(?: (?:from|off|out of)" + _EN_LIST + ")?",
    r"take (?:me|my number|this number) (?:off|out of)" + _EN_LIST,
    r"leave me alone",
    r"(?:(?:you have|you ve got|you got|this is|its|it s) (?:the |a )?)?wrong (?:number|person)",
]
_FR_NOUN = r"(?:messages?|textos?|texto|sms|rappels?|notifications?)"
_FR_MORE = (r"(?: (?:me|m|moi|nous|svp|stp|s il vous plait|s il te plait|merci|plus|jamais|de|d|"
            r"des|les|ces|vos|a|ce|numero|maintenant|" + _FR_NOUN[3:-1] + r"))*")
FRENCH = [
    r"arret(?:e|ez|er|ons)?(?: (?:de|d))?(?: (?:m|me|nous))? (?:ecrire|texter|envoyer|contacter|"
    r"deranger)",
    r"arret(?:e|ez|er|ons)? (?:les|ces|vos|tes) " + _FR_NOUN,
    r"(?:ne (?:m |me |nous )?|m |me |nous )(?:envoyez|envoie|envoyer|ecrivez|ecris|ecrire|"
    r"textez|texte|texter|contactez|contacter) plus",
    r"ne plus (?:m |me |nous )?(?:envoyer|ecrire|texter|contacter)",
    r"plus de " + _FR_NOUN,
    r"(?:je (?:veux|voudrais|souhaite) )?(?:me )?(?:desabonner|desinscrire)",
    r"(?:desabonnez|desabonne|desinscrivez|desinscris|retirez|retire|enlevez|enleve|supprimez|"
    r"supprime) moi(?: de (?:la|cette|votre|vos|ta) (?:liste|listes))?",
    r"je ne veux plus (?:recevoir )?(?:de |des |vos |ces |les )?" + _FR_NOUN,
    r"laissez moi tranquille|fichez moi la paix|foutez moi la paix",
    r"(?:(?:c est|vous avez) (?:le |un )?)?(?:mauvais|faux) numero|erreur de numero",
]
_ES_NOUN = r"(?:mensajes?|textos?|sms|recordatorios?|notificaciones?)"
_ES_MORE = (r"(?: (?:me|mas|ya|por favor|porfavor|gracias|a este numero|nunca|de|los|estos|"
            r"sus|nada|" + _ES_NOUN[3:-1] + r"))*")
SPANISH = [
    r"(?:por favor )?no me (?:envien|envies|envie|manden|mandes|mande|escriban|escribas|escriba|"
    r"texteen|textees|contacten|contactes|contacte)",
    r"(?:dejen|deja|deje|dejar|paren|para|pare|parar) de (?:escribirme|enviarme|mandarme|"
    r"textearme|contactarme|molestarme|escribir|enviar|mandar|molestar)",
    r"no (?:quiero|deseo) (?:recibir )?(?:mas )?" + _ES_NOUN,
    r"no mas " + _ES_NOUN,
    r"(?:quiero )?(?:darme|dame|denme|me doy) de baja",
    r"(?:quitenme|quiteme|quitame|borrenme|borreme|eliminenme|sacame|saquenme|saqueme)"
    r"(?: de (?:la|esta|su|sus|tu) (?:lista|listas))?",
    r"dejenme en paz|dejeme en paz|dejame en paz",
    r"(?:(?:es|tienen) (?:el |un )?)?numero equivocado",
]
_POLITE = (r"(?:please|pls|plz|ok|okay|hi|hello|hey|just|kindly|seriously|bonjour|allo|svp|stp|"
           r"s il vous plait|s il te plait|merci|hola|por favor|porfavor|gracias|thanks|thank you|"
           r"thx|ty)")
_AROUND = re.compile(rf"^(?:{_POLITE} )*(.*?)(?: {_POLITE})*$")


def _language(patterns: list[str], more: str) -> re.Pattern[str]:
    return re.compile("(?:" + "|".join(f"(?:{p})" for p in patterns) + ")" + more)


PHRASES = {"en": _language(ENGLISH, _EN_MORE), "fr": _language(FRENCH, _FR_MORE),
           "es": _language(SPANISH, _ES_MORE)}
_CLAUSES = re.compile(r"[.!?;,\n\r¡¿]+")


def folded(text: str) -> str:
    """`text` in lower case without accents, every run of other characters than letters and
    digits (spaces, punctuation, apostrophes, emoji) one space."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.findall(r"[^\W_]+", plain.casefold()))


def revocation_language(body: str) -> str | None:
    """The language ("en", "fr", "es") of the plain-words revocation in `body`, or None if
    `body` holds none (see the module's notes)."""
    if len(body) > 320:  # a long message is a letter for staff, not a reply
        return None
    for clause in _CLAUSES.split(body):
        words = _AROUND.fullmatch(folded(clause))
        core = words[1] if words else ""
        if not core:
            continue
        for language, pattern in PHRASES.items():
            if pattern.fullmatch(core):
                return language
    return None
