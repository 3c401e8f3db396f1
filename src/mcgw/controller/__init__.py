"""The control loop: provider events → translate → publish.

The controller owns "what is in force". It translates every complete snapshot it is
given, publishes a new route table only when the table's version (a hash of its
canonical bytes) changes, and keeps the last good table when a reload is rejected.
It never imports the data plane: whoever runs it passes a ``publish`` callable, so the
same loop can feed an in-process gateway, a remote one, or a test.
"""
