"""Local servers that speak real wire formats, so tests run the real clients against them."""

from tests.fakes.model_servers import FakeAnthropic, FakeOpenAI, Reply, Seen

__all__ = ["FakeAnthropic", "FakeOpenAI", "Reply", "Seen"]
