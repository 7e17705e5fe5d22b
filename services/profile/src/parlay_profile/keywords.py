"""Opt-out / opt-in keywords in message text (pure).

A message is a keyword only when the *whole* message is one (after trimming, case folding,
removing accents, Arabic diacritics and trailing punctuation): "STOP", "Stop.", "  arrêt " are;
"please don't stop" and "stop sending me coupons" are not. This is how carriers and providers
treat them (Twilio's advanced opt-out, CTIA guidance), and it keeps ordinary conversation from
flipping anyone's consent.

Languages: English, Spanish, Portuguese, French, German, Dutch, Arabic. Deliberately absent:
"YES"/"SI"/"OUI" (an answer to any question, not an opt-in), "HELP"/"INFO" (not consent).
Some words are keywords on SMS only (see SMS_ONLY).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Keyword = Literal["opt_out", "opt_in"]

OPT_OUT = frozenset(
    {
        # English (CTIA / Twilio standard set)
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "optout",
        "opt out",
        "opt-out",
        "revoke",
        # Spanish
        "alto",
        "parar",
        "para",
        "detener",
        "baja",
        "darse de baja",
        "dar de baja",
        "cancelar",
        "cancelar suscripcion",
        # Portuguese
        "pare",
        "sair",
        "descadastrar",
        "cancelar inscricao",
        "cancelar assinatura",
        # French
        "arret",
        "arreter",
        "desabonner",
        "desinscrire",
        "desinscription",
        "desabonnement",
        # German
        "stopp",
        "abmelden",
        "abbestellen",
        "austragen",
        # Dutch
        "stoppen",
        "afmelden",
        "uitschrijven",
        # Arabic (after normalization: alef forms folded, diacritics removed)
        "توقف",
        "ايقاف",
        "الغاء",
        "الغاء الاشتراك",
        "الغاء الاشتراكات",
    }
)

OPT_IN = frozenset(
    {
        # English
        "start",
        "unstop",
        "subscribe",
        "resume",
        # Spanish
        "inicio",
        "iniciar",
        "comenzar",
        "alta",
        "suscribir",
        "suscribirme",
        "reanudar",
        # Portuguese
        "comecar",
        "voltar",
        "assinar",
        "inscrever",
        # French
        "demarrer",
        "commencer",
        "abonner",
        "reprendre",
        # German
        "anmelden",
        "starten",
        # Dutch
        "aanmelden",
        "hervatten",
        # Arabic
        "ابدا",
        "بدء",
        "اشتراك",
        "اشترك",
    }
)

_ARABIC_DIACRITICS = re.compile("[\u064b-\u0652\u0670\u0640]")  # harakat, dagger alef, tatweel
_ALEF_FORMS = str.maketrans({"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627"})
_EDGE_PUNCTUATION = " \t\r\n.!?¡¿,;:\"'()[]*_~-،؛؟"
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Case-folded, accent-free (Latin), diacritic-free (Arabic), edge-punctuation-free text with
    single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _ARABIC_DIACRITICS.sub("", text).translate(_ALEF_FORMS)
    # Strip Latin accents (é -> e, ç -> c) without touching Arabic letters.
    decomposed = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    text = _SPACES.sub(" ", text).strip(_EDGE_PUNCTUATION)
    return text


#: Words that are keywords on SMS (where carriers treat them so) but, in a WhatsApp
#: conversation with a bot or an agent, far more often mean something else ("cancel" an order,
#: "voltar" to the menu, "inicio" of a flow). On WhatsApp they are ordinary text.
SMS_ONLY = frozenset(
    {
        "cancel",
        "end",
        "quit",
        "para",
        "cancelar",
        "sair",
        "resume",
        "inicio",
        "iniciar",
        "comenzar",
        "alta",
        "reanudar",
        "comecar",
        "voltar",
        "commencer",
        "reprendre",
        "hervatten",
    }
)

#: Channels where message text is checked for keywords (WhatsApp and SMS, incl. Twilio).
KEYWORD_CHANNELS = frozenset({"sms", "twilio", "whatsapp"})


def detect(text: str, channel: str = "sms") -> Keyword | None:
    """ "opt_out", "opt_in" or None for a message's text on a channel (None on channels without
    keyword semantics)."""
    channel = channel.strip().lower()
    if channel not in KEYWORD_CHANNELS or not text or len(text) > 64:
        return None
    normalized = normalize_text(text)
    if channel == "whatsapp" and normalized in SMS_ONLY:
        return None
    if normalized in OPT_OUT:
        return "opt_out"
    if normalized in OPT_IN:
        return "opt_in"
    return None
