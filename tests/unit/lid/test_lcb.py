"""The Language Confusion Benchmark's check (`services/lid/lcb.py`) on hand-written replies, rule by rule.

Each rule of the benchmark's `compute_metrics.py` has a reply that only passes or fails because of it:
the `\\nQ:` cut, punctuation, the 5-token rule (whitespace, jieba, MeCab), the 0.3 threshold, one wrong
line, and WPR's English words. The real lid.176 model, jieba and fugashi/unidic-lite run; the threshold
uses a tiny genuine fastText model whose probabilities are set by its word vectors.
"""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.lid import lcb
from services.lid.core import LanguageCheck, LanguageIdentifier
from tests.fixtures.lid import write_fasttext_model

GERMAN = "Das Wetter ist heute wirklich sehr schön"
ENGLISH = "The weather is really lovely today in the park"


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> frozenset[str]:
    path = tmp_path_factory.mktemp("words") / "words"
    path.write_text("computer\nComputer\nthe\ncode\nNASA\nscience\n", encoding="utf-8")
    return lcb.load_words(path)


def check(identifier, text, expected, words=None) -> LanguageCheck:
    return lcb.lcb_check(identifier, text, expected, words)


def test_word_list_keeps_lowercase_words_over_three_letters(words):
    assert words == {"computer", "code", "science"}


def test_clean_cuts_at_the_next_question_and_drops_punctuation():
    # Stripped before the punctuation goes, as the benchmark does: the space before `،` stays.
    assert lcb.clean("  Hallo, Welt! (ja) — gut #1 «x» ،\nQ: What next?\nmore") == "Hallo Welt ja   gut 1 «x» "
    assert lcb.clean("no cut at Q: inside a line") == "no cut at Q inside a line"


def test_next_question_is_not_checked(lid_identifier):
    result = check(lid_identifier, f"{GERMAN}.\nQ: {ENGLISH}?", "de")
    assert [line.text for line in result.lines] == [GERMAN]
    assert result.line_pass is True and result.passed


def test_lines_under_five_whitespace_tokens_are_skipped(lid_identifier):
    result = check(lid_identifier, f"{GERMAN}\nThis is four words\nWell, this is five words", "de")
    assert [line.text for line in result.lines] == [GERMAN, "Well this is five words"]
    # Punctuation goes before counting: "a , b , c" is three tokens, not five.
    assert check(lid_identifier, "eins , zwei , drei", "de").lines_checked == 0


def test_chinese_lines_are_counted_in_jieba_words(lid_identifier):
    assert lcb.tokenize("我爱北京天安门", "zh") == ["我", "爱", "北京", "天安门"]  # 4 words: skipped
    result = check(lid_identifier, "我爱北京天安门\n今天天气很好我们去公园散步吧", "zh")
    assert [line.text for line in result.lines] == ["今天天气很好我们去公园散步吧"]
    assert result.line_pass is True
    # Whitespace would count the whole Chinese line as one token; only the zh tokenizer keeps it.
    assert check(lid_identifier, "今天天气很好我们去公园散步吧", "ko").lines_checked == 0


def test_japanese_lines_are_counted_in_mecab_words(lid_identifier):
    assert lcb.tokenize("私は学生です", "ja") == ["私", "は", "学生", "です"]  # 4 words: skipped
    result = check(lid_identifier, "私は学生です\n日本語を勉強しています", "ja")
    assert [line.text for line in result.lines] == ["日本語を勉強しています"]
    assert result.lines[0].raw_label == "__label__ja"


def test_one_wrong_line_fails_the_reply(lid_identifier):
    result = check(lid_identifier, f"{GERMAN}\n{ENGLISH}\nWir gehen danach noch in den Park", "de")
    assert [line.passed for line in result.lines] == [True, False, True]
    assert result.lines[1].language == "en" and result.lines[1].raw_label == "__label__en"
    assert result.line_pass is False and not result.passed
    assert (result.lines_checked, result.lines_passed) == (3, 2)
    assert result.line_pass_rate == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> LanguageIdentifier:
    """de and en, plus 300 labels no word votes for, so that a mixed line's top probability is low."""
    fillers = [f"__label__q{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(300)]
    words = {w: "__label__de" for w in ("eins", "zwei", "drei", "vier", "fünf")}
    words |= {w: "__label__en" for w in ("one", "two")}
    path = tmp_path_factory.mktemp("tiny") / "tiny.bin"
    return LanguageIdentifier(write_fasttext_model(path, ["__label__de", "__label__en", *fillers], words))


def test_top_label_at_or_under_point_three_is_a_wrong_line(tiny_model):
    low, high = check(tiny_model, "eins zwei drei one two\neins zwei drei vier one", "de").lines
    assert low.raw_label == high.raw_label == "__label__de"
    assert low.probability <= lcb.THRESHOLD < high.probability
    assert not low.passed and high.passed


def test_english_words_fail_the_word_level(lid_identifier, words):
    russian = "Это очень хороший ответ на ваш вопрос"
    assert check(lid_identifier, f"{russian} про computer", "ru", words).word_pass is False
    assert check(lid_identifier, f"{russian} про code", "ru", words).word_pass is False  # 4 letters: > 3
    assert check(lid_identifier, f"{russian} про Computer", "ru", words).word_pass is True  # case-sensitive
    clean = check(lid_identifier, russian, "ru", words)
    assert (clean.word_pass, clean.word_note) == (True, None)


def test_word_level_is_undefined_where_the_benchmark_does_not_count_it(lid_identifier, words):
    assert check(lid_identifier, f"{GERMAN} computer", "de", words).word_pass is None  # latin script
    failing = check(lid_identifier, f"Это очень хороший ответ на ваш вопрос\n{ENGLISH}", "ru", words)
    assert failing.line_pass is False and failing.word_pass is None and "line errors" in failing.word_note
    no_list = check(lid_identifier, "Это очень хороший ответ на ваш вопрос", "ru", None)
    assert no_list.word_pass is None and "POLYGLOT_LID_WORD_LIST" in no_list.word_note


def test_a_reply_without_a_long_line_is_skipped_and_scores_as_the_benchmark(lid_identifier):
    skipped = check(lid_identifier, "Ja.\nGut so", "de")
    assert (skipped.line_pass, skipped.lines, skipped.passed) == (None, (), False)
    good = check(lid_identifier, GERMAN, "de")
    bad = check(lid_identifier, f"{GERMAN}\n{ENGLISH}", "de")
    # compute_metrics: skipped replies count nowhere; acc is the mean share of good lines.
    assert lcb.score([skipped, good, bad], "de") == {"acc": pytest.approx(0.75), "lpr": 0.5}
    assert lcb.average([{"lpr": 0.5, "wpr": 1.0}, {"lpr": 1.0}]) == {"lpr": 0.75, "wpr": 1.0}
    scores = lcb.score_all({("okapi", "de"): [good, bad], ("aya", "de"): [good], ("okapi", "fr"): [skipped]})
    assert scores[("okapi", "de")]["lpr"] == 0.5 and scores[("all", "de")]["lpr"] == 0.75
    assert scores[("okapi", "all")]["lpr"] == 0.75  # (0.5 + 1.0) / 2: no kept line in fr counts as 1.0
    assert scores[("all", "all")]["lpr"] == pytest.approx((0.75 + 1.0) / 2)


def test_expected_language_in_any_scheme_and_unknown_codes_name_the_field(lid_identifier):
    assert check(lid_identifier, GERMAN, "deu_Latn").line_pass is True
    # `xx` is no code; `xho` is Xhosa, a real language lid.176 has no label for.
    results = lid_identifier.check_language([(GERMAN, "de"), (GERMAN, "xx"), (GERMAN, "xho")], metric="lcb")
    assert results[0].metric == "lcb" and results[1].field == "items[1].expected_language"
    assert results[2].field == "items[2].expected_language" and "no label for" in results[2].error
    with pytest.raises(InvalidArgument) as caught:
        lid_identifier.check_language([(GERMAN, "de")], metric="lpr")
    assert caught.value.field == "metric"
