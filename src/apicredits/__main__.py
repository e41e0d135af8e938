"""``python -m apicredits`` is the ``apicredits`` command."""

from __future__ import annotations

from apicredits.cli import main

main()
