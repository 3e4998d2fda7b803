"""The reliability suite: each row of a red-team report (issue 19) reproduced as a test.

One module per row, `test_rowNN_<what>.py`; each test fails on the code the row was reported against and
passes with its remedy. They run real components on loopback (gRPC services, the scripted OpenAI-compatible
endpoint of `tests.fixtures.judge`, whose request count is what a provider would bill), and inject only the
faults this machine cannot produce on demand (`faults.py`: a store that blips or whose disk is full).

    .venv/bin/python -m pytest tests/reliability -q
"""
