"""Run radmine's report and image pipelines on a Dask cluster (dask.dataframe + distributed).

Nothing here schedules work itself: every function builds a Dask graph whose
tasks call a pipeline's own public *pandas* function of one partition -- the
very function the single-machine path calls on the whole table -- so the Dask
results are the pandas results, concatenated in partition order.

=========================  ====================================================================
module                     what it holds
=========================  ====================================================================
:mod:`.client`             :func:`get_client`, :func:`compute`, :func:`from_pandas`, graph helpers
:mod:`.io`                 :func:`read_reports_sharded`, :func:`to_parquet`
:mod:`.text`               :func:`sentences`, :func:`references`, :func:`negations`, :func:`links`,
                           :func:`label_reports`, :func:`topic_transform`
:mod:`.images`             :func:`embed_images` (every worker commits its own cache shards)
=========================  ====================================================================

Topic fitting that streams the corpus from shards (tokenising on the workers,
gensim's online LDA ``update`` on the client) is
:func:`radmine.topics.streaming.fit_topics_streaming`, also importable from here.
``radmine.dask`` is an alias of this module.

Examples
--------
>>> import radmine.distributed as rd                        # doctest: +SKIP
>>> client = rd.get_client("local", n_workers=2)            # doctest: +SKIP
>>> reports = rd.read_reports_sharded("exports/*.parquet")  # doctest: +SKIP
>>> labels = rd.label_reports(reports, vocabulary="chest_xray")  # doctest: +SKIP
>>> rd.to_parquet(labels, "out/labels")                     # doctest: +SKIP
"""

from __future__ import annotations

from radmine._lazy import lazy_exports

#: public name -> the module that defines it (imported on first use, so that
#: ``radmine.distributed.client`` can be imported without the pipelines)
_EXPORTS = {
    "DEFAULT_PARTITION_SIZE": "radmine.distributed.client",
    "compute": "radmine.distributed.client",
    "from_pandas": "radmine.distributed.client",
    "get_client": "radmine.distributed.client",
    "is_dask_collection": "radmine.distributed.client",
    "embed_images": "radmine.distributed.images",
    "read_reports_sharded": "radmine.distributed.io",
    "to_parquet": "radmine.distributed.io",
    "label_reports": "radmine.distributed.text",
    "links": "radmine.distributed.text",
    "negations": "radmine.distributed.text",
    "order_links": "radmine.distributed.text",
    "references": "radmine.distributed.text",
    "sentences": "radmine.distributed.text",
    "topic_transform": "radmine.distributed.text",
    "NEGATION_COLUMNS": "radmine.text.negation",
    "negation_table": "radmine.text.negation",
    "REFERENCE_COLUMNS": "radmine.text.references",
    "reference_table": "radmine.text.references",
    "fit_topics_streaming": "radmine.topics.streaming",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("radmine.distributed", globals(), _EXPORTS)
