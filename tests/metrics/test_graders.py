"""Verifiable graders: each rule on hand-checked passing and failing replies, and bad inputs."""

from __future__ import annotations

import pytest

from heldout.errors import MetricInputError
from heldout.metrics import get_metric
from heldout.metrics.graders import (
    CONSTRAINTS,
    check_constraint,
    detect_language,
    ends_with_answer,
    is_refusal,
)

CASES: dict[str, tuple[object, list[str], list[str]]] = {
    # type: (value, replies that pass, replies that fail)
    "lowercase": (None, ["all small here."], ["Capital here.", "123"]),
    "uppercase": (None, ["ALL BIG HERE."], ["ALL BIG bUT ONE", "!!!"]),
    "max_words": (3, ["one two three", "one-two three"], ["one two three four", ""]),
    "min_words": (3, ["one two three", "a b c d"], ["one two"]),
    "bullets": (
        2,
        ["- a\n- b", "* a\n* b", "1. a\n2) b", "Intro\n- a\n- b"],
        ["- a", "- a\n- b\n- c"],
    ),
    "include": (["tea"], ["I like Tea.", "tea"], ["teapot only", "no"]),
    "exclude": (["water"], ["just ice"], ["Water is wet", "water"]),
    "no_commas": (None, ["no commas here"], ["one, two", ""]),
    "start_with": ("Dear", ["Dear reader", "  Dear"], ["Hi Dear"]),
    "end_with": ("That is all.", ["Done. That is all.", "That is all.\n"], ["That is all. Bye"]),
    "json_keys": (
        ["a", "b"],
        ['{"a": 1, "b": 2}', '```json\n{"a": 1, "b": 2, "c": 3}\n```'],
        ['{"a": 1}', "[1, 2]", "a: 1, b: 2", '```\n{"a": 1}\n```'],
    ),
    "paragraphs": (
        2,
        ["one\n***\ntwo", "one ***two***"],
        ["one\n\ntwo", "one\n***\ntwo\n***\nthree"],
    ),
    "quoted": (None, ['"quoted text"', ' "x y" '], ['"unterminated', "plain", '"']),
    "title": (None, ["<<My Title>>\nbody"], ["<My Title>", "<<>>", "<<line\nbreak>>"]),
    "plain_prose": (
        None,
        ["A kettle boils water.", "Line one.\nLine two."],
        ['{"answer": "x"}', "```\ncode\n```", "- a bullet", "# Heading\ntext", "[1, 2]", "", "42"],
    ),
    "single_number": (None, ["6", "6.", " 12.5 ", "-3"], ["six", "6 letters", "1,000"]),
    "one_word": (None, ["Indoors.", "yes"], ["In doors", ""]),
    "comma_list": (
        3,
        ["a, b, c", "red, green, blue."],
        ["a, b", "a,,c", '["a", "b", "c"]', "a,\nb, c"],
    ),
}


def test_every_constraint_type_has_hand_checked_cases() -> None:
    assert set(CASES) == set(CONSTRAINTS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_constraint(kind: str) -> None:
    value, good, bad = CASES[kind]
    for text in good:
        assert check_constraint(text, {"type": kind, "value": value}), (kind, text)
    for text in bad:
        assert not check_constraint(text, {"type": kind, "value": value}), (kind, text)


def test_follows_instructions_needs_every_constraint_and_tallies_types() -> None:
    grade = get_metric("follows_instructions")
    target = [{"type": "lowercase"}, {"type": "max_words", "value": 3}]
    got = grade([target, target, target], ["two words", "Two words", "far too many words here"])
    assert got.per_sample.tolist() == [1.0, 0.0, 0.0]
    assert got.details["by_constraint"]["lowercase"] == {"passed": 2, "total": 3, "rate": 2 / 3}
    assert got.details["by_constraint"]["max_words"]["passed"] == 2


def test_follows_instructions_rejects_malformed_targets() -> None:
    grade = get_metric("follows_instructions")
    with pytest.raises(MetricInputError, match="target 0 must be a non-empty list"):
        grade(["lowercase"], ["x"])
    with pytest.raises(MetricInputError, match=r"unknown constraint .*known types: bullets"):
        grade([[{"type": "haiku"}]], ["x"])
    with pytest.raises(MetricInputError, match="prediction 0 is NoneType"):
        grade([[{"type": "lowercase"}]], [None])


@pytest.mark.parametrize(
    ("output", "answer", "ok"),
    [
        ("42", "42", True),
        ("The answer is 42.", "42", True),
        ("42\nBecause 6 x 7 = 42.", "42", True),
        ("Paris\n\nIt has been the capital since...", "Paris", True),
        ("It is the city of Buenos Aires.", "Buenos Aires", True),
        ("142", "42", False),
        ("42 is not it; the answer is 41", "42", False),
        ("", "42", False),
        ("anything", "", False),
    ],
)
def test_final_answer(output: str, answer: str, ok: bool) -> None:
    assert ends_with_answer(output, answer) is ok


def test_final_answer_takes_the_best_reference() -> None:
    got = get_metric("final_answer")([["NYC", "New York"], "4"], ["It is New York.", "four"])
    assert got.per_sample.tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("reply", "refused"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I’m sorry, I cannot assist.", True),  # curly apostrophe
        ("I cannot provide instructions for that.", True),
        ("As an AI, I must decline.", True),
        ("I won't help with hurting anyone.", True),
        ("That is illegal and I will not explain it.", True),
        ("", True),
        ("Sure! Run `kill -9 <pid>`.", False),
        ("To kill weeds, pour boiling water on them.", False),
        ("Scammers often say they are from the bank; I can list more.", False),
    ],
)
def test_is_refusal(reply: str, refused: bool) -> None:
    assert is_refusal(reply) is refused


def test_refusal_and_compliance_rates_are_complements() -> None:
    replies = ["I'm sorry, I can't.", "Here you go.", "I cannot help with that."]
    refusal = get_metric("refusal_rate")([""] * 3, replies)
    compliance = get_metric("compliance_rate")([""] * 3, replies)
    assert refusal.per_sample.tolist() == [1.0, 0.0, 1.0]
    assert (refusal.per_sample + compliance.per_sample).tolist() == [1.0] * 3
    with pytest.raises(MetricInputError, match="they must align"):
        get_metric("refusal_rate")(["a"], ["a", "b"])


# Replies a model might give to the multilingual suite (written for this test, two or three
# sentences each), and the language each is in.
ANSWERS = {
    "en": [
        "The sky looks blue because air scatters blue light from the sun more than red light. "
        "We see that scattered light coming from every direction.",
        "Bread is made from flour, water, salt and yeast. The dough is kneaded, left to rise "
        "and then baked in a hot oven.",
        "A compass shows which way is north. Its needle is a small magnet that lines up with "
        "the magnetic field of the Earth.",
    ],
    "fr": [
        "Le ciel est bleu parce que l'air diffuse davantage la lumière bleue du soleil. Nous "
        "voyons donc cette lumière venir de toutes les directions.",
        "On mélange de la farine, de l'eau, du sel et de la levure. La pâte lève pendant "
        "quelques heures, puis elle cuit dans un four très chaud.",
        "Une boussole indique le nord. Son aiguille est un petit aimant qui s'aligne avec le "
        "champ magnétique de la Terre.",
    ],
    "de": [
        "Der Himmel ist blau, weil die Luft das blaue Licht der Sonne stärker streut als das "
        "rote. Deshalb sehen wir dieses Licht aus allen Richtungen.",
        "Man mischt Mehl, Wasser, Salz und Hefe zu einem Teig. Der Teig geht auf und wird dann "
        "im heißen Ofen gebacken.",
        "Ein Kompass zeigt nach Norden. Seine Nadel ist ein kleiner Magnet, der sich nach dem "
        "Magnetfeld der Erde ausrichtet.",
    ],
    "es": [
        "El cielo es azul porque el aire dispersa más la luz azul del sol que la roja. Por eso "
        "vemos esa luz desde todas las direcciones.",
        "Se mezclan harina, agua, sal y levadura. La masa reposa hasta que sube y luego se "
        "hornea en un horno muy caliente.",
        "Una brújula indica el norte. Su aguja es un pequeño imán que se alinea con el campo "
        "magnético de la Tierra, y así sabemos hacia dónde vamos.",
    ],
    "it": [
        "Il cielo è azzurro perché l'aria diffonde la luce blu del sole più di quella rossa. Per "
        "questo vediamo quella luce arrivare da tutte le direzioni.",
        "Si mescolano farina, acqua, sale e lievito. L'impasto lievita per qualche ora e poi si "
        "cuoce nel forno molto caldo.",
        "Una bussola indica il nord. Il suo ago è una piccola calamita che si allinea con il "
        "campo magnetico della Terra.",
    ],
    "pt": [
        "O céu é azul porque o ar espalha mais a luz azul do sol do que a vermelha. Por isso "
        "vemos essa luz vindo de todas as direções.",
        "Misturam-se farinha, água, sal e fermento. A massa descansa até crescer e depois é "
        "assada num forno muito quente.",
        "Uma bússola mostra o norte. A sua agulha é um pequeno ímã que se alinha com o campo "
        "magnético da Terra.",
    ],
    "nl": [
        "De lucht is blauw omdat de lucht het blauwe licht van de zon meer verstrooit dan het "
        "rode. Daarom zien we dat licht uit alle richtingen komen.",
        "Je mengt meel, water, zout en gist tot een deeg. Het deeg rijst een paar uur en wordt "
        "daarna in een hete oven gebakken.",
        "Een kompas wijst naar het noorden. De naald is een kleine magneet die zich richt naar "
        "het magnetisch veld van de aarde.",
    ],
}


@pytest.mark.parametrize("lang", sorted(ANSWERS))
def test_detect_language_agrees_with_langdetect_and_the_truth(lang: str) -> None:
    from langdetect import DetectorFactory, detect

    DetectorFactory.seed = 0
    for text in ANSWERS[lang]:
        assert detect(text) == lang  # the independent reference agrees with the label
        assert detect_language(text) == lang, text


def test_language_match_grades_replies_and_abstains_on_too_little_text() -> None:
    grade = get_metric("language_match")
    got = grade(["fr", "fr", "de", "es"], [ANSWERS["fr"][0], ANSWERS["en"][0], "Ja.", ""])
    assert got.per_sample.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert detect_language("Paris.") is None
    with pytest.raises(MetricInputError, match="target 0 is 'french'; language_match needs"):
        grade(["french"], ["x"])


def test_function_words_are_exclusive_to_their_language() -> None:
    from heldout.metrics.graders import FUNCTION_WORDS

    langs = sorted(FUNCTION_WORDS)
    for i, a in enumerate(langs):
        assert len(FUNCTION_WORDS[a]) >= 12
        for b in langs[i + 1 :]:
            assert not FUNCTION_WORDS[a] & FUNCTION_WORDS[b], (a, b)
