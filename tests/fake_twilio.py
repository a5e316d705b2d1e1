"""Moved to `devstack.fake_twilio` (the load driver runs it as a process too)."""

from devstack.fake_twilio import FakeTwilio, Fault, Hold  # noqa: F401
