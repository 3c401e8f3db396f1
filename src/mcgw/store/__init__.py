"""The Store API: a whereami-compatible backend, the demo's pods and the benchmark's target.

GKE's multi-cluster Gateway tutorials put the ``whereami`` sample behind the gateway:
every answer is a JSON object saying which cluster, zone and pod served it. This package
answers the same fields, so a response tells where the gateway sent a request, and adds
an ``echo`` object (method, raw path, host, headers in order, body size) so routing tests
see exactly what reached the backend.

It is also what the load tester measures the gateway against, so it is built to cost
little per request: a small :class:`asyncio.Protocol` over ``httptools`` on ``uvloop``;
everything that depends only on the pod (its fields, the response head) is encoded once
at start-up; per request only the dynamic parts (host, timestamp, echo) are encoded and
joined to the pre-encoded bytes.

Modules:

* :mod:`~mcgw.store.settings` — configuration from the environment, as a pod gets it.
* :mod:`~mcgw.store.payload` — pure: the answer's bytes for a request (no sockets).
* :mod:`~mcgw.store.requestlog` — one JSON line per request on stdout, buffered and
  written by a background thread so that logging never waits on the pipe.
* :mod:`~mcgw.store.protocol` — the HTTP/1.x shell: parsing, keep-alive, flow control.
* :mod:`~mcgw.store.server` — listening socket, signals, graceful exit;
  ``python -m mcgw.store`` runs :func:`~mcgw.store.server.main`.

Glossary: *pod fields* are those fixed for the process (cluster_name, pod_name, zone…);
*request fields* change per request (host_header, timestamp, echo, headers).
"""

from __future__ import annotations
