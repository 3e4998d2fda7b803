"""XQuAD scoring on hand-written model outputs (the paper's post-processing), X-CSQA letters, XNLI argmax."""

from __future__ import annotations

import pytest

from flows.evals.scoring import (
    argmax_choice,
    extract_letter,
    normalise,
    postprocess_answer,
    score_xquad,
    strip_quotes,
    token_f1,
    tokens,
)

# (language, question, gold answers, model output after the forced prefix, post-processed answer, EM, F1)
CASES = [
    # German: „…“ quotes, then a trailing explanation.
    (
        "de",
        "Wie viele Punkte gab die Verteidigung der Panthers ab?",
        ["308"],
        " „308“, denn die Verteidigung der Panthers war die sechstbeste der Liga.",
        "308",
        1.0,
        1.0,
    ),
    # German: the question repeated first, then the answer with an article the normaliser drops.
    (
        "de",
        "Wer gewann den Super Bowl 50?",
        ["die Denver Broncos"],
        " Wer gewann den Super Bowl 50? Die Denver Broncos.",
        "Die Denver Broncos.",
        1.0,
        1.0,
    ),
    # German: »…« (the other German quote style) and a line break before the explanation.
    ("de", "Welche Farbe hatte der Ball?", ["Gold"], " »Gold«\nDas steht im zweiten Absatz.", "Gold", 1.0, 1.0),
    # Russian: «…» and a trailing explanation.
    (
        "ru",
        "Сколько очков пропустила защита «Пантер»?",
        ["308"],
        " «308» очков, как сказано в тексте.",
        "308",
        1.0,
        1.0,
    ),
    # Russian: no quotes, a trailing explanation: EM fails, F1 gives partial credit.
    (
        "ru",
        "Кто выиграл Супербоул 50?",
        ["Денвер Бронкос"],
        " Денвер Бронкос, потому что они победили Каролину со счётом 24:10 в финале.",
        "Денвер Бронкос, потому что они победили Каролину с",
        0.0,
        pytest.approx(0.4),
    ),  # P 2/8, R 2/2
    # Russian: the question repeated in «…» quotes, answer after it.
    (
        "ru",
        "Где проходил матч?",
        ["на стадионе «Леви»"],
        " «Где проходил матч?» — на стадионе «Леви».",
        "на стадионе «Леви».",
        1.0,
        1.0,
    ),
    # Chinese: full-width 「…」 and a trailing explanation; character tokens.
    ("zh", "黑豹队的防守丢了多少分？", ["308"], " 「308」分，因为他们的防守在联盟中排名第六。", "308", 1.0, 1.0),
    # Chinese: 『…』 nested-style quotes, answer with characters.
    ("zh", "谁赢得了第50届超级碗？", ["丹佛野马队"], "『丹佛野马队』。", "丹佛野马队", 1.0, 1.0),
    # Chinese: full-width ＂…＂ quotes around a partly right answer: character-level F1.
    ("zh", "谁赢得了第50届超级碗？", ["丹佛野马队"], " ＂丹佛野马＂", "丹佛野马", 0.0, pytest.approx(8 / 9)),
    # Chinese: the question repeated, then “…” quotes.
    ("zh", "比赛在哪里举行？", ["李维斯体育场"], " 比赛在哪里举行？“李维斯体育场”", "李维斯体育场", 1.0, 1.0),
    # Spanish: “…” quotes and an article.
    (
        "es",
        "¿Quién ganó el Super Bowl 50?",
        ["los Denver Broncos"],
        " “Los Denver Broncos”.",
        "Los Denver Broncos",
        1.0,
        1.0,
    ),
    # French: « … » with the French inner spaces.
    (
        "fr",
        "Qui a gagné le Super Bowl 50 ?",
        ["les Broncos de Denver"],
        " « les Broncos de Denver ».",
        "les Broncos de Denver",
        1.0,
        1.0,
    ),
    # Greek: cut at 50 characters.
    (
        "el",
        "Ποιος κέρδισε;",
        ["Οι Μπρόνκος του Ντένβερ"],
        " Οι Μπρόνκος του Ντένβερ κέρδισαν τον αγώνα με σκορ 24-10 απέναντι στους Πάνθηρες.",
        "Οι Μπρόνκος του Ντένβερ κέρδισαν τον αγώνα με σκορ",
        0.0,
        pytest.approx(2 * (4 / 9) / (4 / 9 + 1)),
    ),
    # English: the reference normalisation (articles, punctuation, case).
    (
        "en",
        "Who won Super Bowl 50?",
        ["Denver Broncos", "The Denver Broncos"],
        ' "the Denver Broncos."',
        "the Denver Broncos.",
        1.0,
        1.0,
    ),
]


@pytest.mark.parametrize(("language", "question", "answers", "output", "answer", "em", "f1"), CASES)
def test_xquad_scores_hand_written_outputs(language, question, answers, output, answer, em, f1):
    score = score_xquad(output, answers, question=question, language=language)
    assert score.answer == answer
    assert score.exact_match == em
    assert score.f1 == f1


def test_post_processing_steps():
    # cut at the first line break, then at 50 characters
    assert postprocess_answer(" 308\n\nWeil ...") == "308"
    assert postprocess_answer("x" * 80) == "x" * 50
    # leading punctuation left by the prefix ("... the answer to the question is: ...")
    assert postprocess_answer(": Berlin") == "Berlin"
    # a quote that never closes (cut off by the 50-character limit) is stripped, not taken as a span
    assert strip_quotes("«Очень длинный ответ без закрывающей кавыч") == "Очень длинный ответ без закрывающей кавыч"
    assert strip_quotes("„Berlin“") == "Berlin" and strip_quotes('"" “x”') == "x"
    # the question is dropped even without its question mark
    assert postprocess_answer("Wer gewann das Spiel Die Broncos", question="Wer gewann das Spiel?") == "Die Broncos"


def test_normalisation_and_tokens():
    assert normalise("The  Denver-Broncos!", "en") == "denverbroncos"
    assert normalise("Die Denver Broncos", "de") == "denver broncos"
    assert normalise("«Леви»", "ru") == "леви"
    assert tokens("丹佛 野马队2015年", "zh") == ["丹", "佛", "野", "马", "队", "2015", "年"]
    assert tokens("Super Bowl", "zh") == ["super", "bowl"]
    assert token_f1([], []) == 1.0 and token_f1(["a"], []) == 0.0 and token_f1(["a", "b"], ["b", "c"]) == 0.5


def test_unknown_language_scores_with_plain_normalisation():
    assert score_xquad(" «x»", ["X"], language="pt").exact_match == 1.0


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        (" B", "B"),
        (" (C) because fish swim", "C"),
        ("D.", "D"),
        (" Ｅ", "E"),  # full-width
        ("答案是（A）", "A"),
        ("答案：C、因为……", "C"),
        ("I think the correct option is D.", "D"),
        (" Ответ: B", "B"),
        ("  the river bank", "D"),  # no letter: the option's text
        ("none of them", None),
    ],
)
def test_xcsqa_letter_extraction(output, letter):
    options = ["bank account", "money", "savings", "river bank", "vault"]
    assert extract_letter(output, options) == letter


def test_xnli_argmax():
    assert argmax_choice([-3.0, -1.5, -2.0]) == 1
    assert argmax_choice([-1.0, -1.0, -2.0]) == 0  # first on ties
    with pytest.raises(ValueError):
        argmax_choice([])
