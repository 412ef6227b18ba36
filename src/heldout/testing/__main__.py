"""``python -m heldout.testing --port N``: run the fake OpenAI-compatible server."""

from heldout.testing._server import main

main()
