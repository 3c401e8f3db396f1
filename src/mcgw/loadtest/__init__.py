"""``mcgw load``: a k6-style load tester with k6's model, metrics, scripts and summary.

Modules:

* :mod:`~mcgw.loadtest.options` — what the user asked for (:class:`LoadOptions`), and the
  merge of a script's ``options`` under the command line (flags win, as in k6);
* :mod:`~mcgw.loadtest.scenario` — k6's six executors as pure schedules (target VUs at
  time t, arrival times), parsed from ``options.scenarios`` or the shortcut flags;
* :mod:`~mcgw.loadtest.runner` — VUs as asyncio tasks, executors, gracefulStop and
  gracefulRampDown, dropped and late iterations, tagged samples, abortOnFail; ``run`` /
  ``run_sync`` / ``run_raw`` + ``summarize``;
* :mod:`~mcgw.loadtest.script` — k6 JavaScript in QuickJS (one context per VU, each on
  a greenlet of the event loop's thread: ``http.get`` switches to the loop and back) and
  Python scenarios (async, on the loop); ``handleSummary``;
* :mod:`~mcgw.loadtest.client` — its own HTTP/1.1 client (httptools), keep-alive
  connections, http and https, each phase timed with ``perf_counter_ns``;
* :mod:`~mcgw.loadtest.cookies` — k6's per-VU cookie jar over :mod:`http.cookiejar`;
* :mod:`~mcgw.loadtest.redirects` — following redirects as k6 (Go's client) does;
* :mod:`~mcgw.loadtest.custom` — ``k6/metrics`` custom metrics (JS and Python scenarios);
* :mod:`~mcgw.loadtest.statuses` — ``http.expectedStatuses`` and response callbacks;
* :mod:`~mcgw.loadtest.stdlib` — ``k6/encoding`` and ``k6/crypto``;
* :mod:`~mcgw.loadtest.execution` — ``k6/execution`` (``vu.execution`` in Python);
* :mod:`~mcgw.loadtest.metrics` — Counter/Gauge/Rate/Trend, submetrics
  ``metric{tag:value}``, trends in HdrHistograms (bounded memory, mergeable);
* :mod:`~mcgw.loadtest.thresholds` — k6's threshold syntax, plus ``cluster{name:X}`` /
  ``zone{name:X}`` shares of the per-cluster breakdown;
* :mod:`~mcgw.loadtest.report` — k6's end-of-test text (byte for byte for SEED.md's run),
  checks tree, ✓/✗ threshold marks;
* :mod:`~mcgw.loadtest.output` — ``--out json`` (k6 NDJSON), ``--summary-export``, and a
  self-contained HTML report (inline SVG);
* :mod:`~mcgw.loadtest.workers` — ``--workers N`` processes, results merged.

Glossary (k6's): a *VU* is a concurrent loop; an *iteration* is one pass of the script's
default function; *http_req_failed* is true for an error or a status outside 200–399 (or outside the
script's ``http.expectedStatuses``);
*graceful stop* is how long running iterations may finish after the scenario's end. Beyond
k6: open-model executors also record ``http_req_response_time`` from each iteration's
*intended* start (wrk2's correction for coordinated omission: a stalled generator or a
slow system cannot hide latency by starting requests late) and count ``iterations_late``.

Scripts. A JS VU costs two greenlet switches per request (about a microsecond each) and
its responses cross into JS lazily (status at once; body, headers, timings, cookies when
read). All VUs of a process share its core: scale with ``--workers``. Figures against
wrk, hey and Locust: docs/load.md (bench/load.py).

Knowingly left out (k6 features): HTTP/2, WebSockets and gRPC; client certificates and
``tlsVersion``/``tlsCipherSuites`` options; ``k6/html`` (``Response.html``),
``k6/ws``, ``k6/experimental/*`` and remote module
imports other than jslib's ``k6-summary`` (a load-time error naming the line); ``async``
default functions; ``noConnectionReuse``, ``batchPerHost``,
``systemTags``, ``ext``, ``cloud`` (accepted and ignored); ``responseType: 'binary'``,
``exec.vu.tags``/``exec.vu.metrics`` and ``exec.test.abort()`` in the init context (errors
naming the line); following redirects in
plain-URL mode (scripts follow them); the externally-controlled executor; interrupting a
JS iteration busy in a loop that makes no request nor sleep (it holds up its process until
it returns).

Distributing one test over several machines (plan). ``--workers`` already splits a test
into shares (:meth:`Scenario.share`: VUs and shared iterations split evenly, ramping
targets split at every instant, arrival schedules dealt round-robin), starts them at one
agreed instant, runs ``setup`` once and merges raw state (counters, rates, encoded
HdrHistograms, per-second timeline) into exact percentiles. Several machines reuse exactly
that: a coordinator (``mcgw load --agents host1,host2 …``) ships the options and the
script text to an agent on each machine (``mcgw load agent --listen``, HTTP + JSON), each
agent runs its share with local ``--workers``; every few seconds agents stream their raw
state deltas back so the coordinator prints live progress and evaluates ``abortOnFail``
thresholds on the merged state, and can broadcast a stop. Start is a wall-clock instant a
few seconds ahead (machines NTP-synced, skew well under an iteration interval). Losing an
agent fails the run loudly (its share missing would silently under-load the target).

It does not import mcgw.dataplane: the instrument stays independent of what it measures.
"""
