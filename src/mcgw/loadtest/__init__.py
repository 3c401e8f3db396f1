"""``mcgw load``: a k6-style load tester with k6's model, metrics and summary.

Shaped like k6 so that full parity (stages, arrival-rate executors, checks, thresholds,
scripts) can grow into it without reshaping:

* :mod:`~mcgw.loadtest.options` — what the user asked for (:class:`LoadOptions`);
* :mod:`~mcgw.loadtest.scenario` — the executor k6 would pick for those options
  (``constant-vus`` or ``shared-iterations``) and its limits;
* :mod:`~mcgw.loadtest.runner` — VUs as asyncio tasks, duration and graceful stop
  enforced, a progress callback once a second; ``run`` / ``run_sync``;
* :mod:`~mcgw.loadtest.client` — its own HTTP/1.1 client (httptools), one keep-alive
  connection per VU, each phase timed with ``perf_counter_ns``;
* :mod:`~mcgw.loadtest.metrics` — k6's Counter/Gauge/Rate/Trend in a registry, trends in
  HdrHistograms (bounded memory), and the immutable :class:`Summary`;
* :mod:`~mcgw.loadtest.report` — k6's end-of-test text, byte for byte for SEED.md's run.

Glossary (k6's): a *VU* is a concurrent loop; an *iteration* is one pass of the loop
(one request, then the sleep); *http_req_failed* is true for an error or a status outside
200–399; *graceful stop* is how long running iterations may finish after the duration.
It does not import mcgw.dataplane: the instrument stays independent of what it measures.
"""
