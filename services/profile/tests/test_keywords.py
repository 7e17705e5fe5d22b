"""Opt-out / opt-in keyword detection (pure)."""

from __future__ import annotations

import pytest

from parlay_profile import keywords


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop. ",
        "STOP!",
        "Unsubscribe",
        "STOPALL",
        "opt out",
        "Cancel",
        "END",
        "QUIT",
        "ALTO",
        "Parar",
        "baja",
        "Darse de baja",
        "cancelar suscripción",  # es
        "Pare",
        "SAIR",
        "descadastrar",
        "Cancelar inscrição",  # pt
        "ARRÊT",
        "arret",
        "Désabonner",
        "désinscription",  # fr
        "STOPP",
        "Abmelden",
        "abbestellen",  # de
        "stoppen",
        "AFMELDEN",
        "uitschrijven",  # nl
        "توقف",
        "إيقاف",
        "إلغاء",
        "الغاء الاشتراك",
        "إِلْغَاء",  # ar (with and without marks)
    ],
)
def test_opt_out_keywords_on_sms(text: str) -> None:
    assert keywords.detect(text, "sms") == "opt_out"
    assert keywords.detect(text, "twilio") == "opt_out"


@pytest.mark.parametrize(
    "text",
    [
        "START",
        "unstop",
        "Subscribe",
        "INICIO",
        "comenzar",
        "Começar",
        "assinar",
        "Démarrer",
        "commencer",
        "ANMELDEN",
        "starten",
        "aanmelden",
        "ابدأ",
        "اشتراك",
    ],
)
def test_opt_in_keywords_on_sms(text: str) -> None:
    assert keywords.detect(text, "sms") == "opt_in"


@pytest.mark.parametrize(
    "text",
    [
        "please don't stop",
        "stop sending me coupons",
        "YES",
        "si",
        "oui",
        "HELP",
        "hello",
        "",
        "stop " * 20,
        "where is my order? cancel it",
    ],
)
def test_ordinary_text_is_not_a_keyword(text: str) -> None:
    assert keywords.detect(text, "sms") is None


def test_whatsapp_keywords_exclude_conversational_words_and_other_channels_have_none() -> None:
    assert keywords.detect("STOP", "whatsapp") == "opt_out"
    assert keywords.detect("darse de baja", "WhatsApp") == "opt_out"
    assert keywords.detect("start", "whatsapp") == "opt_in"
    for word in ("cancel", "voltar", "inicio", "end", "para"):
        assert keywords.detect(word, "whatsapp") is None, word
        assert keywords.detect(word, "sms") is not None, word
    assert keywords.detect("STOP", "telegram") is None
    assert keywords.detect("STOP", "messenger") is None
