"""One place for defaults: ``radmine mine``'s settings, ``radmine label`` and the estimators agree.

Every key of the estimator sections of ``default_config.toml`` either equals the default of the
estimator parameter it feeds, or is listed in MINE_ONLY (what ``mine`` decides around the
estimators). A new key must be put in one of the two, so the two sets of defaults cannot drift.
"""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

import radmine
from radmine.cli import _parser
from radmine.labels.stream import label_source
from radmine.labels.vocabulary import auto_vocabulary
from radmine.pipeline.config import default_config
from radmine.pipeline.steps import TOPIC_NEGATION, topic_settings


def signature_defaults(obj) -> dict:
    return {n: p.default for n, p in inspect.signature(obj).parameters.items() if p.default is not inspect.Parameter.empty}


def _auto(v, sentinel):
    return "auto" if v == sentinel else v


#: section -> {config key: (estimators whose parameter it feeds, config value -> parameter value)}
SAME = lambda v: v  # noqa: E731
AS_TUPLE = tuple
FEEDS = {
    "topics": {
        "unit": ([radmine.TopicModel], SAME),
        "backend": ([radmine.TopicModel], SAME),
        "passes": ([radmine.TopicModel], SAME),
        "min_df": ([radmine.TopicModel], SAME),
        "max_df": ([radmine.TopicModel], SAME),
        "eta": ([radmine.TopicModel], SAME),
        "phrases": ([radmine.TopicModel], SAME),
        "mark_negation": ([radmine.TopicModel], TOPIC_NEGATION.__getitem__),
        "drop_normal": ([radmine.TopicModel], SAME),
        "n_subtopics": ([radmine.HierarchicalTopicModel], SAME),
    },
    "labels": {
        "vocabulary": ([radmine.WeakLabeler, radmine.label_reports, label_source], SAME),
        "sections": ([radmine.WeakLabeler, radmine.label_reports], AS_TUPLE),
    },
    "embed": {
        "backbone": ([radmine.ImageEmbedder], SAME),
        "image_size": ([radmine.ImageEmbedder], lambda v: v or None),
        "channels": ([radmine.ImageEmbedder], SAME),
        "batch_size": ([radmine.ImageEmbedder], lambda v: _auto(v, 0)),
        "num_workers": ([radmine.ImageEmbedder], lambda v: _auto(v, -1)),
    },
    "cluster": {
        "n_rounds": ([radmine.JointClusterer], SAME),
        "finetune": ([radmine.JointClusterer], SAME),
        "finetune_mode": ([radmine.JointClusterer], SAME),
        "finetune_epochs": ([radmine.JointClusterer], SAME),
        "hierarchical": ([radmine.JointClusterer], SAME),
    },
    "img2text": {
        "text_encoder": ([radmine.ImageTextModel], SAME),
        "objective": ([radmine.ImageTextModel], SAME),
        "image_features": ([radmine.ImageTextModel], SAME),
        "n_ensemble": ([radmine.ImageTextModel], SAME),
        "lr_schedule": ([radmine.ImageTextModel], SAME),
        "dev_fraction": ([radmine.ImageTextModel], SAME),
        "epochs": ([radmine.ImageTextModel], SAME),
        "batch_size": ([radmine.ImageTextModel], SAME),
        "ks": ([radmine.ImageTextModel], AS_TUPLE),
    },
}
#: Keys that are `mine`'s own decisions, not an estimator default.
MINE_ONLY = {
    "topics": {"n_topics", "candidates"},  # 0 = choose K among the candidates by held-out c_npmi
    "labels": set(),
    "embed": set(),
    # 0 = about sqrt(n_images / 2); which features the clusterer is given; the graph for that space
    "cluster": {"n_clusters", "space", "n_neighbors"},
    "img2text": set(),
}


def test_every_estimator_setting_of_the_config_is_classified():
    cfg = default_config()
    for section, feeds in FEEDS.items():
        assert set(cfg[section]) == set(feeds) | MINE_ONLY[section], section


@pytest.mark.parametrize("section", sorted(FEEDS))
def test_config_defaults_equal_estimator_defaults(section):
    cfg = default_config()[section]
    for key, (owners, convert) in FEEDS[section].items():
        want = convert(cfg[key])
        for owner in owners:
            got = signature_defaults(owner)[key]
            assert got == want and type(got) is type(want), f"{section}.{key} = {cfg[key]!r} but {owner.__name__}({key}={got!r})"


def test_cluster_auto_neighbours_on_cnn_features_is_the_clusterer_default():
    from radmine.pipeline.steps import cluster_neighbors

    assert cluster_neighbors(-1, "image") == signature_defaults(radmine.JointClusterer)["n_neighbors"] == 20
    assert cluster_neighbors(-1, "report") is None
    assert cluster_neighbors(0, "image") is None and cluster_neighbors(15, "report") == 15
    with pytest.raises(ValueError, match=r"cluster.n_neighbors must be an integer >= -1 .*found 'many'"):
        cluster_neighbors("many", "image")


def test_topic_settings_reach_the_model_unchanged():
    """What step_topics passes equals a default TopicModel's parameters."""
    params = radmine.TopicModel().get_params()
    for key, value in topic_settings(default_config()["topics"]).items():
        assert params[key] == value, key
    with pytest.raises(ValueError, match=r"topics.mark_negation must be one of .*found 'yes'"):
        topic_settings({**default_config()["topics"], "mark_negation": "yes"})


def test_label_cli_vocabulary_default_is_the_labeler_default():
    args = _parser().parse_args(["label", "reports.csv", "--out", "labels.csv"])
    assert args.vocabulary == signature_defaults(radmine.WeakLabeler)["vocabulary"] == "auto"


def test_auto_vocabulary_rule():
    xr = pd.DataFrame({"modality": ["CR", "DX", "CT"]})
    ct = pd.DataFrame({"modality": ["CT", "MR", "XR", None]})
    assert auto_vocabulary(xr) == "chest_xray" and auto_vocabulary(ct) == "ct_mr"
    assert auto_vocabulary(pd.DataFrame({"modality": [None, " "]})) == "chest_xray"  # nothing known
    assert auto_vocabulary(["No effusion."]) == auto_vocabulary(None) == "chest_xray"
    reports = pd.DataFrame({"report_id": ["a", "b"], "modality": ["CT", "MR"],
                            "text": ["FINDINGS: Small pleural effusion.", "FINDINGS: No acute infarct."]})
    assert radmine.WeakLabeler().fit(reports).vocabulary_.name == load_name("ct_mr")
    assert radmine.WeakLabeler().fit().vocabulary_.name == load_name("chest_xray")


def load_name(builtin: str) -> str:
    return radmine.load_vocabulary(builtin).name
