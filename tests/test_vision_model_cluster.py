"""vision_model.cluster: the Ray engine's local mode embeds the fixture's posters into the same
vectors, cache and model version as the single-process path.

Skipped without the optional extra ``posterec[cluster]`` (Ray Data). One local Ray instance of
2 CPUs serves the whole module (``ray.init`` costs ~5 s). Vectors are compared with
``atol=1e-6``: both engines run the same TFLite flatbuffer (the driver ships it to the workers)
on the same decoded pixels, so they agree to float32 rounding of a few ulps at most (unit
vectors, entries ~1e-2); the Keras runtime is rebuilt on each worker from the same weights
file and may batch differently, hence the same small tolerance rather than exact equality.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from test_vision_model_cli import CORRUPT, plant_posters  # noqa: E402
from test_vision_model_embed import Entry, keras_home, poster_bytes, write_entry  # noqa: E402,F401

ATOL = 1e-6


@pytest.fixture(scope="module")
def local_ray(keras_home):  # noqa: F811
    """A local Ray instance; workers see this process's KERAS_HOME and PYTHONPATH."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join([here, os.path.join(here, "tests"), os.environ.get("PYTHONPATH", "")]))
    from vision_model.cluster import FORWARDED_ENV

    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield
    ray.shutdown()
    mp.undo()


def fixture_posters(folder, n=12):
    """``n`` generated posters (distinct bytes) and one HTML page saved as movie n+1's poster."""
    entries = [write_entry(folder, m, poster_bytes("sun" if m % 2 else "stripes", m, size=(120 + m, 180)))
               for m in range(1, n + 1)]
    return entries + [write_entry(folder, n + 1, b"<html>not a poster</html>")]


CONFIG = dict(backbone="MobileNetV2", alpha=0.35, weights="imagenet", batch_size=2)


@pytest.mark.realdata
@pytest.mark.slow
def test_ray_engine_gives_the_local_vectors_and_cache(local_ray, tmp_path):
    """The default TFLite runtime, two workers sharing the posters."""
    from vision_model import VisionConfig, embed_posters
    from vision_model.cache import EmbeddingCache
    from vision_model.cluster import RayConfig, RayEmbedder

    entries = fixture_posters(tmp_path / "posters")
    config = VisionConfig(**CONFIG)
    local = embed_posters(entries, config, cache_dir=tmp_path / "local", progress=False)
    # URLs, as an object store would give them (file:// through pyarrow's file system)
    remote = [e._replace(path=f"file://{e.path}") for e in entries]
    # the TFLite model converted by the local run (its cache) is the one the driver ships
    embedder = RayEmbedder(config, RayConfig(workers=2), cache_dir=tmp_path / "local",
                           sha256={str(e.path): e.sha256 for e in remote})
    got = embed_posters(remote, config, cache_dir=tmp_path / "ray", embedder=embedder, progress=False)

    assert got.n_embedded == local.n_embedded == 12 and embedder.n_images == 12 and len(got.vectors) == 12
    np.testing.assert_array_equal(got.vectors.ids, local.vectors.ids)
    assert np.allclose(got.vectors.values, local.vectors.values, rtol=0, atol=ATOL), \
        np.abs(got.vectors.values - local.vectors.values).max()
    assert [f.movie_id for f in got.failed] == [f.movie_id for f in local.failed] == [13]
    assert got.failed[0].error == local.failed[0].error  # the same words for the same bad file
    a, b = EmbeddingCache(tmp_path / "local", config.cache_key()), EmbeddingCache(tmp_path / "ray", config.cache_key())
    shas = {e.sha256 for e in entries}
    rows_a, rows_b = a.get(shas), b.get(shas)
    assert sorted(rows_a) == sorted(rows_b) and len(rows_b) == 12
    assert all(np.allclose(rows_a[s], rows_b[s], rtol=0, atol=ATOL) for s in rows_a)
    again = embed_posters(remote, config, cache_dir=tmp_path / "ray", embedder=embedder, progress=False)
    assert again.n_cached == 12 and again.n_embedded == 0  # merged into the cache: nothing runs again


@pytest.mark.realdata
@pytest.mark.slow
def test_ray_keras_workers_load_the_weights_and_report_stale_copies(local_ray, tmp_path):
    """The Keras runtime builds the model on the worker (its KERAS_HOME: the shared weights, no
    download); a copy whose bytes are not the store's is reported, never cached."""
    from vision_model import VisionConfig, embed_posters
    from vision_model.cluster import RayConfig, RayEmbedder

    entries = fixture_posters(tmp_path / "posters", n=3)[:3]
    copy = tmp_path / "bucket"
    for e in entries:  # the "object store" holds a different (stale) poster for movie 2
        write_entry(copy, e.movie_id, poster_bytes("sun", 99) if e.movie_id == 2 else e.path.read_bytes())
    remote = [e._replace(path=str(copy / e.path.name)) for e in entries] + \
        [Entry(4, str(copy / "4.jpg"), "1" * 64)]  # and none at all for movie 4
    config = VisionConfig(**CONFIG)
    embedder = RayEmbedder(config, RayConfig(), runtime="keras", cache_dir=tmp_path / "cache",
                           sha256={str(e.path): e.sha256 for e in remote})
    got = embed_posters(remote, config, cache_dir=tmp_path / "cache", embedder=embedder, progress=False)
    local = embed_posters(entries, config, cache_dir=None, runtime="keras", progress=False)
    assert list(got.vectors.ids) == [1, 3]
    assert np.allclose(got.vectors.values, local.vectors.values[[0, 2]], rtol=0, atol=ATOL), \
        np.abs(got.vectors.values - local.vectors.values[[0, 2]]).max()
    why = {f.movie_id: f.error for f in got.failed}
    assert "not the poster store's" in why[2] and "cannot read" in why[4], why


@pytest.mark.realdata
@pytest.mark.slow
def test_cli_embed_engine_ray_writes_the_local_version(local_ray, planted_home, tmp_path, capsys):
    import shutil

    from catalog import ModelStore
    from posterec.cli import main

    plant_posters(planted_home)
    args = ["embed", "--alpha", "0.35", "--batch-size", "8"]
    assert main(["--home", str(planted_home)] + args) == 0
    other = tmp_path / "other-home"
    shutil.copytree(planted_home, other)
    for f in (other / "cache" / "embeddings").glob("*.npz"):  # the vectors go; the converted model stays
        f.unlink()
    bucket = tmp_path / "shared-posters"  # the workers read a copy of the store, as on NFS
    shutil.copytree(other / "posters" / "ml-100k", bucket)
    assert main(["--home", str(other)] + args + ["--engine", "ray",
                                                 "--posters-url", bucket.as_uri()]) == 0
    out = capsys.readouterr().out
    assert out.count("14 embedded, 0 from cache, 2 duplicates of others by sha256, 1 unusable") == 2, out
    a, b = ModelStore(planted_home).open_current(), ModelStore(other).open_current()
    va, vb = a.arrays("visual"), b.arrays("visual")
    np.testing.assert_array_equal(va["movie_ids"], vb["movie_ids"])
    assert np.allclose(va["values"], vb["values"], rtol=0, atol=ATOL)
    sa, sb = a.stage("embed"), b.stage("embed")
    assert sb.pop("engine")["name"] == "ray"
    assert [f["movie_id"] for f in sb["failed"]] == [CORRUPT]
    sa.pop("failed"), sb.pop("failed")  # the paths in the reasons differ; the rest is the same
    assert sa == sb
