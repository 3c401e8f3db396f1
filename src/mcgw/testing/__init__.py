"""mcgw's public test kit: real loopback sockets, no mocks of the network.

* :mod:`mcgw.testing.upstream` — :class:`~mcgw.testing.upstream.FakeUpstream`, an
  in-process HTTP/1.1 server on 127.0.0.1 and an ephemeral port, scripted per
  request (:class:`~mcgw.testing.upstream.Reply`: status, body, chunking, delay,
  close/reset/hang behaviours) and recording every request it saw.
* :mod:`mcgw.testing.client` — :class:`~mcgw.testing.client.RawClient`, a byte-exact
  HTTP/1.1 client for one connection: send anything (malformed on purpose), read
  back parsed responses.
* :mod:`mcgw.testing.tables` — builders for tiny :class:`mcgw.ir.table.RouteTable`
  values.
* :mod:`mcgw.testing.gateway` — :func:`~mcgw.testing.gateway.serve`: a real data-plane
  gateway on loopback serving a table, closed on exit; and
  :func:`~mcgw.testing.gateway.translate_yaml`: manifests → table through the real
  loader and translator.
* :mod:`mcgw.testing.h2origin` — :class:`~mcgw.testing.h2origin.H2Origin`, an h2c
  (HTTP/2 prior knowledge) origin on loopback, scripted per request
  (:class:`~mcgw.testing.h2origin.H2Reply`: delay, reset, close, no content-length)
  and honouring flow control.
* :mod:`mcgw.testing.manifests` — Gateway API YAML for tests and benchmarks: the
  GatewayClass, a Service with its EndpointSlice, a whole Gateway → endpoints setup.
* :mod:`mcgw.testing.runner` — :func:`~mcgw.testing.runner.run`: run a coroutine on
  uvloop with a hard time bound, for plain (non-async) pytest functions.
"""
