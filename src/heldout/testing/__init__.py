"""Test doubles for heldout and its users: a fake OpenAI-compatible server on 127.0.0.1."""

from heldout.testing._server import FakeOpenAIServer, ServerScript

__all__ = ["FakeOpenAIServer", "ServerScript"]
