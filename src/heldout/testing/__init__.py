"""Test doubles for heldout and its users: a fake OpenAI-compatible server on 127.0.0.1.

``heldout.testing._browser`` drives a headless Chromium over the DevTools protocol (the
report's layout tests and the README screenshot); it is imported only where used."""

from heldout.testing._server import FakeOpenAIServer, ServerScript

__all__ = ["FakeOpenAIServer", "ServerScript"]
