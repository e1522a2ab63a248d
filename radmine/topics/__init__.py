"""Topic mining over reports and key-image sentences (Shin et al. 2015/2016).

- :class:`~radmine.topics.model.TopicModel`: LDA over reports or sentences
  (gensim or tomotopy backend), inspection API, image labels, save/load.
- :class:`~radmine.topics.hierarchy.HierarchicalTopicModel`: LDA inside each topic ("7.2").
- :func:`~radmine.topics.selection.select_n_topics`: perplexity/coherence over K.
- :mod:`~radmine.topics.preprocess`: tokens, phrases, negation marks, vocabulary filters.
"""

from radmine.topics.hierarchy import HierarchicalTopicModel
from radmine.topics.model import TopicModel
from radmine.topics.selection import select_n_topics

__all__ = ["TopicModel", "HierarchicalTopicModel", "select_n_topics"]
