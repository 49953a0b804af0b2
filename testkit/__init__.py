"""The test doubles tests/ and bench/ share: sinks, fake servers, databases, processes, and a
harness that drives a real Baton as Slack does. Not shipped in the wheel."""
