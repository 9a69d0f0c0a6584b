"""Shared fixtures: generated MovieLens-format data with a planted structure, and ../shared."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from movielens_fixture import planted, write_csv, write_ml1m, write_ml100k

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("POSTEREC_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture(scope="session")
def planted_data():
    return planted()


@pytest.fixture
def ml100k_dir(tmp_path, planted_data) -> Path:
    return write_ml100k(tmp_path / "src-ml-100k", planted_data)


@pytest.fixture
def ml1m_dir(tmp_path, planted_data) -> Path:
    return write_ml1m(tmp_path / "src-ml-1m", planted_data)


@pytest.fixture
def csv_dir(tmp_path, planted_data) -> Path:
    return write_csv(tmp_path / "src-ml-latest-small", planted_data)


@pytest.fixture
def planted_home(tmp_path, ml100k_dir) -> Path:
    """A posterec home holding the planted fixture imported as dataset ``ml-100k``."""
    from catalog import fetch_dataset

    home = tmp_path / "home"
    fetch_dataset(home, "ml-100k", source=ml100k_dir)
    return home


@contextlib.contextmanager
def served(app, **config):
    """``app`` served by uvicorn in a thread on 127.0.0.1 at a free port; yields the port."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
