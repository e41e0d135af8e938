"""A serving gateway keeps its start-up heap out of the garbage collector's full scans."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from apicredits.gateway.app import create_app
from apicredits.settings import Settings


def starlette_of(tmp_path: Path, name: str) -> Any:
    asgi: Any = create_app(Settings(data_dir=tmp_path / name, admin_token="t"))
    return asgi.app.app  # under BodySizeLimit and HotPath


def test_the_startup_heap_is_frozen_while_serving_and_released_at_shutdown(
    tmp_path: Path,
) -> None:
    first, second = starlette_of(tmp_path, "a"), starlette_of(tmp_path, "b")

    async def main() -> None:
        assert gc.get_freeze_count() == 0
        async with first.router.lifespan_context(first):
            frozen = gc.get_freeze_count()
            assert frozen > 50_000  # the libraries, models and app, scanned no more
            # A second app in the same process (tests do this) neither freezes again (which
            # would add its own start-up objects) nor, at its shutdown, releases what the
            # first froze. (Frozen objects still die by reference counting, so the count
            # can only fall a little.)
            async with second.router.lifespan_context(second):
                assert gc.get_freeze_count() <= frozen
            assert gc.get_freeze_count() > frozen - 1_000
        assert gc.get_freeze_count() == 0

    asyncio.run(main())
