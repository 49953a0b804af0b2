"""Local servers that speak real wire formats, so tests run the real clients against them."""

from testkit.fakes.model_servers import (
    INVENTED,
    LLAMA_CPP_PYTHON,
    FakeAnthropic,
    FakeOpenAI,
    Quirks,
    Reply,
    Seen,
)

__all__ = [
    "INVENTED",
    "LLAMA_CPP_PYTHON",
    "FakeAnthropic",
    "FakeOpenAI",
    "Quirks",
    "Reply",
    "Seen",
]
