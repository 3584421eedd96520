"""``python -m trainkit``: the same as the ``trainkit`` command."""

from .cli import main

if __name__ == "__main__":
    main()
