"""A local Slack for tests and the browser sandbox: a fake Web API and signed deliveries."""
