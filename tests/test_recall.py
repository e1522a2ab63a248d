"""Recall@K against a naive full-matrix reference, word-match rate and BLEU."""

from __future__ import annotations

import math

import numpy as np
import pytest

import radmine
from radmine.img2text.metrics import bleu_scores, tokenize


def naive_recall(img, txt, ks, t2i):
    """Full similarity matrix, explicit per-query ranking, pessimistic ties."""
    s = img.astype(np.float64) @ txt.astype(np.float64).T  # (n_img, n_txt)
    out = {}
    ranks_i = []
    for i in range(len(img)):
        pos = [j for j in range(len(txt)) if t2i[j] == i]
        if not pos:
            continue
        order = sorted(range(len(txt)), key=lambda j: (-s[i, j], t2i[j] == i))  # ties: negatives first
        ranks_i.append(min(order.index(j) for j in pos) + 1 - 0)
        # positives ranked above the best one do not exist; other positives below do not count
        best = max(s[i, j] for j in pos)
        ranks_i[-1] = 1 + sum(1 for j in range(len(txt)) if t2i[j] != i and s[i, j] >= best)
    ranks_t = []
    for j in range(len(txt)):
        order = sorted(range(len(img)), key=lambda i: (-s[i, j], i == t2i[j]))
        ranks_t.append(order.index(t2i[j]) + 1)
    for name, ranks in (("image_to_text", np.array(ranks_i)), ("text_to_image", np.array(ranks_t))):
        for k in ks:
            out[f"{name}_R@{k}"] = float(np.mean(ranks <= k))
        out[f"{name}_median_rank"] = float(np.median(ranks))
        out[f"{name}_mean_rank"] = float(np.mean(ranks))
    return out


def _check_same(a, b):
    assert set(a) == set(b)
    for key in a:
        assert a[key] == pytest.approx(b[key]), key


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_recall_matches_naive_diagonal(chunk_size):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(40, 8)).astype(np.float32)
    txt = (img + rng.normal(scale=1.5, size=img.shape)).astype(np.float32)
    got = radmine.recall_at_k(img, txt, ks=(1, 5, 10), chunk_size=chunk_size)
    _check_same(got, naive_recall(img, txt, (1, 5, 10), np.arange(40)))
    assert 0 < got["image_to_text_R@1"] < got["image_to_text_R@10"] < 1


def test_recall_matches_naive_with_ties_and_many_texts():
    rng = np.random.default_rng(1)
    # small integer vectors: exact dot products and many exact ties
    img = rng.integers(-1, 2, size=(25, 3)).astype(np.float32)
    t2i = rng.integers(0, 25, size=60)
    txt = rng.integers(-1, 2, size=(60, 3)).astype(np.float32)
    want = naive_recall(img, txt, (1, 2, 5), t2i)
    for chunk in (3, 16, 1000):
        _check_same(radmine.recall_at_k(img, txt, ks=(1, 2, 5), text_to_image=t2i, chunk_size=chunk), want)


def test_recall_known_answers():
    e = np.eye(4, dtype=np.float32)
    r = radmine.recall_at_k(e, e, ks=(1,))
    assert r["image_to_text_R@1"] == 1.0 and r["text_to_image_median_rank"] == 1.0
    # a constant model gets the worst rank, not the best (pessimistic ties)
    c = np.ones((5, 2), dtype=np.float32)
    r = radmine.recall_at_k(c, c, ks=(1, 5))
    assert r["image_to_text_R@1"] == 0.0 and r["image_to_text_R@5"] == 1.0
    assert r["text_to_image_mean_rank"] == 5.0
    # image 0 has two texts: the second one is right -> hit at 1
    img = np.array([[1, 0], [0, 1]], dtype=np.float32)
    txt = np.array([[0.5, 0.5], [1, 0], [0, 1]], dtype=np.float32)
    r = radmine.recall_at_k(img, txt, ks=(1,), text_to_image=[0, 0, 1])
    assert r["image_to_text_R@1"] == 1.0
    assert r["text_to_image_R@1"] == pytest.approx(2 / 3)


def test_recall_images_without_text_are_left_out():
    img = np.eye(3, dtype=np.float32)
    txt = img[:2]
    r = radmine.recall_at_k(img, txt, ks=(1,), text_to_image=[0, 1])
    assert r["image_to_text_R@1"] == 1.0 and r["image_to_text_mean_rank"] == 1.0


def test_recall_bad_params():
    a = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="same dim"):
        radmine.recall_at_k(a, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="one text per image"):
        radmine.recall_at_k(a, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="ks must be"):
        radmine.recall_at_k(a, a, ks=(0,))
    with pytest.raises(ValueError, match="text_to_image values"):
        radmine.recall_at_k(a, a, text_to_image=[0, 1, 3])
    with pytest.raises(ValueError, match="text_to_image must be an int array"):
        radmine.recall_at_k(a, a, text_to_image=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="2-D"):
        radmine.recall_at_k(np.zeros(3), a)
    with pytest.raises(ValueError, match="NaN"):
        radmine.recall_at_k(np.full((3, 2), np.nan), a)
    with pytest.raises(ValueError, match="chunk_size"):
        radmine.recall_at_k(a, a, chunk_size=0)


def test_word_match_rate():
    preds = [["kidney", "mass"], ["massive"], ["pleural effusion"], [], ["effusion pleural"]]
    refs = ["A mass in the right kidney.", ["Mass effect.", "No other"], "Small pleural effusion.", "x", "pleural effusion"]
    assert radmine.word_match_rate(preds, refs, k=1) == pytest.approx(2 / 5)
    # "mass" in second position counts at k=2; "massive" never matches "mass"
    assert radmine.word_match_rate(preds, refs, k=2) == pytest.approx(2 / 5)
    assert radmine.word_match_rate([["x", "mass"]], ["mass"], k=2) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        radmine.word_match_rate(preds, refs, k=0)
    with pytest.raises(ValueError, match="has 5 images"):
        radmine.word_match_rate(preds, refs[:2])
    with pytest.raises(TypeError, match="single string"):
        radmine.word_match_rate("mass", "mass")
    assert tokenize("Right-sided 1.6 cm mass.") == ["right-sided", "cm", "mass"]


def test_bleu_hand_computed():
    hyp = ["the", "cat", "sat", "on", "mat"]
    ref = ["the", "cat", "sat", "on", "the", "mat"]
    # p1 = 5/5, p2 = 3/4 (the cat, cat sat, sat on), p3 = 2/3, p4 = 1/2; BP = exp(1 - 6/5)
    bp = math.exp(1 - 6 / 5)
    got = bleu_scores([hyp], [ref])
    assert got["BLEU-1"] == pytest.approx(bp)
    assert got["BLEU-2"] == pytest.approx(bp * math.sqrt(3 / 4))
    assert got["BLEU-4"] == pytest.approx(bp * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # clipping: "the the the" against "the cat" -> p1 = 1/3
    assert bleu_scores([["the"] * 3], [[["the", "cat"]]], max_n=1)["BLEU-1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="hypotheses"):
        bleu_scores([hyp], [])
