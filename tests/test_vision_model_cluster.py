"""vision_model.cluster: the Ray engine's local mode embeds the fixture's posters into the same
vectors, cache and model version as the single-process path.

The Ray tests skip without the optional extra ``posterec[cluster]`` (Ray Data); the pieces the
workers run (reading URLs, embedding encoded bytes) are tested without it. One local Ray instance of
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
from test_vision_model_cli import CORRUPT, plant_posters
from test_vision_model_embed import Entry, keras_home, poster_bytes, write_entry  # noqa: F401

ATOL = 1e-6


@pytest.fixture(scope="module")
def local_ray(keras_home):  # noqa: F811
    """A local Ray instance; workers see this process's KERAS_HOME and PYTHONPATH."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    mp = pytest.MonkeyPatch()
    mp.setenv("PYTHONPATH", os.pathsep.join([here, os.path.join(here, "tests"), os.environ.get("PYTHONPATH", "")]))
    from vision_model.cluster import FORWARDED_ENV

    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()
    mp.undo()


def fixture_posters(folder, n=12):
    """``n`` generated posters (distinct bytes) and one HTML page saved as movie n+1's poster."""
    entries = [write_entry(folder, m, poster_bytes("sun" if m % 2 else "stripes", m, size=(120 + m, 180)))
               for m in range(1, n + 1)]
    return entries + [write_entry(folder, n + 1, b"<html>not a poster</html>")]


CONFIG = {"backbone": "MobileNetV2", "alpha": 0.35, "weights": "imagenet", "batch_size": 2}


# -- what the workers run, without Ray ----------------------------------------------------------
def test_poster_urls_and_reading_them(tmp_path):
    from vision_model.cluster import poster_url, read_url

    store = tmp_path / "home" / "posters" / "ml-1m"
    (e,) = fixture_posters(store, n=1)[:1]
    assert poster_url(e.path, store, None) == str(e.path.resolve())
    assert poster_url(e.path, store, "s3://bucket/posters/") == "s3://bucket/posters/1.jpg"
    assert poster_url(e.path, store, str(tmp_path / "nfs")) == str(tmp_path / "nfs" / "1.jpg")
    with pytest.raises(ValueError, match="not under the poster store"):
        poster_url(tmp_path / "elsewhere.jpg", store, "s3://bucket")
    data = e.path.read_bytes()
    assert read_url(str(e.path)) == read_url(e.path.as_uri()) == data  # a path, and file:// via pyarrow
    with pytest.raises(OSError):
        read_url((store / "missing.jpg").as_uri())


@pytest.mark.realdata
def test_encoded_posters_embed_as_the_files_do(keras_home, tmp_path):  # noqa: F811
    """`embed_encoded` (the workers' path: bytes already read) = `embed_files` (the local path),
    and a bad poster gets the same words from its bytes as from its file."""
    from vision_model import PosterEmbedder, VisionConfig
    from vision_model.embedder import describe_bytes, describe_failure

    entries = fixture_posters(tmp_path, n=5)
    embedder = PosterEmbedder(VisionConfig(**CONFIG), runtime="tflite")
    idx, values, errors = embedder.embed_files([e.path for e in entries], progress=False)
    got_idx, got = embedder.embed_encoded([e.path.read_bytes() for e in entries])
    np.testing.assert_array_equal(got_idx, idx)
    np.testing.assert_array_equal(got, values)  # one process, one model: bit for bit
    assert list(errors) == [5] and errors[5] == describe_bytes(entries[5].path.read_bytes()) \
        == describe_failure(entries[5].path)
    twin = PosterEmbedder(VisionConfig(**CONFIG), runtime="tflite", tflite=embedder.tflite_content)
    assert twin.model is None and twin.dim == embedder.dim  # a worker's: no Keras model, no weights
    np.testing.assert_array_equal(twin.embed_encoded([e.path.read_bytes() for e in entries])[1], values)


def test_engine_ray_without_the_extra_names_it(monkeypatch):
    import sys

    from catalog import PosterecError
    from vision_model.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray[data] were not installed
    with pytest.raises(PosterecError, match=r"pip install 'posterec\[cluster\]'"):
        import_ray()


# -- the engine on a local Ray instance -----------------------------------------------------------


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
def test_cli_embed_engine_ray_gives_the_local_vectors_cache_and_version(local_ray, planted_home, tmp_path, capsys):
    """`posterec embed --engine ray` with two workers reading a copy of the poster store through a
    file:// URL (as from an object store) writes the vectors, cache rows and version the local
    `posterec embed` writes (default TFLite runtime), and a rerun embeds nothing."""
    import shutil

    from catalog import ModelStore
    from posterec.cli import main
    from vision_model import VisionConfig
    from vision_model.cache import EmbeddingCache

    plant_posters(planted_home)
    args = ["embed", "--alpha", "0.35", "--batch-size", "2"]
    assert main(["--home", str(planted_home)] + args) == 0
    other = tmp_path / "other-home"
    shutil.copytree(planted_home, other)
    for f in (other / "cache" / "embeddings").glob("*.npz"):  # the vectors go; the converted model stays
        f.unlink()
    bucket = tmp_path / "bucket"
    shutil.copytree(other / "posters" / "ml-100k", bucket)
    ray_args = ["--engine", "ray", "--workers", "2", "--posters-url", bucket.as_uri()]
    assert main(["--home", str(other)] + args + ray_args) == 0
    out = capsys.readouterr().out
    assert out.count("14 embedded, 0 from cache, 2 duplicates of others by sha256, 1 unusable") == 2, out

    a, b = ModelStore(planted_home).open_current(), ModelStore(other).open_current()
    va, vb = a.arrays("visual"), b.arrays("visual")
    np.testing.assert_array_equal(va["movie_ids"], vb["movie_ids"])
    assert np.allclose(va["values"], vb["values"], rtol=0, atol=ATOL), np.abs(va["values"] - vb["values"]).max()
    sa, sb = a.stage("embed"), b.stage("embed")
    assert sb.pop("engine") == {"name": "ray", "address": None, "workers": 2, "cpus_per_worker": 1,
                                "num_cpus": None, "posters_url": bucket.as_uri()}
    assert [f["movie_id"] for f in sb["failed"]] == [CORRUPT]
    assert sa == sb  # the same manifest entry, the failure's words included

    key = VisionConfig(alpha=0.35).cache_key()  # the rows the next run of either engine starts from
    caches = [EmbeddingCache(h / "cache" / "embeddings", key).path for h in (planted_home, other)]
    (sha_a, rows_a), (sha_b, rows_b) = [(d["sha256"], d["values"]) for d in map(np.load, caches)]
    assert len(sha_b) == 14 and list(sha_a) == list(sha_b)
    assert np.allclose(rows_a, rows_b, rtol=0, atol=ATOL)
