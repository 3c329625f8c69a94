import math

import pytest

from harness_ext import metrics
from harness_ext.models import bertscore_backbone


@pytest.mark.parametrize("text, normalized", [
    ("The Cat sat.", "cat sat"),
    ("  An apple, a day!  ", "apple day"),
    ("theater", "theater"),            # articles only as whole words
    ("Denver Broncos", "denver broncos"),
])
def test_squad_normalization(text, normalized):
    assert metrics.normalize_answer(text) == normalized


def test_published_squad_example():
    # the example of the `squad` metric card: prediction "1976" for gold "1976" -> exact_match 100.0, f1 100.0
    assert metrics.exact_match("1976", "1976") == 1.0 and metrics.f1("1976", "1976") == 1.0


def test_squad_v1_dev_set_style_partial_match():
    # gold "Denver Broncos", prediction "the Broncos": 1 shared token, P = 1/1, R = 1/2 -> F1 = 2/3; EM = 0
    assert metrics.f1("the Broncos", "Denver Broncos") == pytest.approx(2 / 3)
    assert metrics.exact_match("the Broncos", "Denver Broncos") == 0.0
    assert metrics.exact_match("The Denver Broncos!", "denver broncos") == 1.0


def test_f1_hand_computed_with_repeated_tokens():
    # pred [cat, cat, sat], gold [cat, sat, on, mat]: shared = min counts = cat 1 + sat 1 = 2
    # P = 2/3, R = 2/4 -> F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert metrics.f1("the cat cat sat", "a cat sat on the mat") == pytest.approx(4 / 7)
    assert metrics.f1("", "anything") == 0.0 and metrics.f1("nothing shared", "other words") == 0.0


def test_corpus_perplexity_is_token_weighted_not_mean_of_exp():
    pairs = [(2.0, 1), (4.0, 3)]
    assert metrics.corpus_perplexity(pairs) == pytest.approx(math.exp(6 / 4))
    mean_of_exp = (math.exp(2.0) + math.exp(4 / 3)) / 2  # the notebook's defect
    assert metrics.corpus_perplexity(pairs) != pytest.approx(mean_of_exp)
    assert math.isnan(metrics.corpus_perplexity([]))


@pytest.fixture(scope="module")
def backbone():
    return bertscore_backbone()


def test_default_backbone_is_the_packaged_minilm(backbone):
    assert backbone["name"] == "all-MiniLM-L6-v2:L6" and backbone["num_layers"] == 6


def test_bertscore_matches_bertscorer_directly(backbone):
    from bert_score import BERTScorer

    preds = ["Mission command relies on trust.", "The MDMP has seven steps.", "Planning is a process."]
    refs = ["Mission command is built on mutual trust.", "There are seven steps in the MDMP.", "Orders follow."]
    p, r, f = metrics.bertscore(preds, refs, backbone["model"], backbone["num_layers"])
    direct = BERTScorer(model_type=backbone["model"], num_layers=backbone["num_layers"]).score(preds, refs)
    for ours, theirs in zip((p, r, f), direct):
        assert ours == pytest.approx(theirs.tolist(), abs=1e-6)
    assert f[0] > f[2]  # a paraphrase scores above an unrelated answer


def test_bertscore_empty_prediction_scores_zero(backbone):
    p, r, f = metrics.bertscore(["", "   ", "Seven steps."], ["a", "b", "Seven steps."],
                                backbone["model"], backbone["num_layers"])
    assert (p[0], r[0], f[0]) == (0.0, 0.0, 0.0) and f[1] == 0.0
    assert f[2] == pytest.approx(1.0, abs=1e-5)
