"""``python -m heldout``: the same CLI as the ``heldout`` command."""

from heldout.cli import main

if __name__ == "__main__":
    main()
