"""The ``mcgw`` command: argument parsing, wiring and exit codes, nothing else.

Exit codes: 0 success; 1 a run failed (a pod would not start, a port was taken);
2 bad input (configuration, arguments, SQL), nothing started; 130 interrupted.
Only this package calls ``sys.exit``; everything below raises ``McgwError``s.
"""
