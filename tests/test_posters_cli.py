"""``posterec scrape-posters`` / ``import-posters`` end to end (fake TMDB on 127.0.0.1)."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import shared_path
from fake_tmdb import FakeTmdb, Reply, jpeg_bytes
from posterec.cli import main
from posters import PosterStore


def test_scrape_tmdb_by_title_search_via_env_urls(planted_home, monkeypatch, capsys):
    with FakeTmdb() as fake:
        monkeypatch.setenv("TMDB_API_KEY", fake.key)
        monkeypatch.setenv("TMDB_API_URL", fake.api_url)
        monkeypatch.setenv("TMDB_IMAGE_URL", fake.image_url)
        rc = main(["--home", str(planted_home), "scrape-posters", "--workers", "4", "--rate", "0",
                   "--limit", "10", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == 0 and out["counts"] == {"ok": 10} and out["posters"] == 10
        searches = [q for p, q in fake.requests if p == "/3/search/movie"]
        assert len(searches) == 10 and all("year=" in q for q in searches)
        rc = main(["--home", str(planted_home), "scrape-posters", "--rate", "0", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == 0 and out["counts"] == {"ok": 56} and out["skipped"] == 10 and out["posters"] == 66
        assert len([p for p, _ in fake.requests if p == "/3/search/movie"]) == 66
        assert fake.key not in (planted_home / "posters" / "ml-100k" / "posters.csv").read_text()


def test_scrape_with_links_file_uses_movie_endpoint(planted_home, tmp_path, monkeypatch, capsys):
    links = tmp_path / "links.csv"
    links.write_text("movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,\n500,1,2\n")
    with FakeTmdb() as fake:
        fake.movies[862] = "/toy.jpg"
        monkeypatch.setenv("TMDB_API_KEY", fake.key)
        rc = main(["--home", str(planted_home), "scrape-posters", "--links", str(links), "--limit", "2",
                   "--rate", "0", "--api-url", fake.api_url, "--image-url", fake.image_url, "--size", "w185"])
        assert rc == 0
        assert fake.hits["/3/movie/862"] == 1 and fake.hits["/t/p/w185/toy.jpg"] == 1
        assert "ok 2" in capsys.readouterr().out


def test_scrape_url_list_skips_unknown_ids(planted_home, tmp_path, capsys):
    with FakeTmdb() as fake:
        url = fake.route("/img/a.jpg", Reply(body=jpeg_bytes()))
        listing = tmp_path / "urls.csv"
        listing.write_text(f"movie_id,url\n1,{url}\n2,{url}\n4242,{url}\n")
        rc = main(["--home", str(planted_home), "scrape-posters", "--source", "urls", str(listing), "--rate", "0"])
        out = capsys.readouterr().out
        assert rc == 0 and "4242" in out and "ok 2" in out
        assert [e.movie_id for e in PosterStore(planted_home, "ml-100k").entries()] == [1, 2]


def test_usage_and_input_errors(planted_home, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    assert main(["--home", str(planted_home), "scrape-posters"]) == 1
    assert "TMDB_API_KEY" in capsys.readouterr().err
    assert main(["--home", str(planted_home), "scrape-posters", "--source", "urls"]) == 2
    assert main(["--home", str(planted_home), "scrape-posters", "--source", "ftp"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("movie_id,url\n1,file:///etc/passwd\n")
    assert main(["--home", str(planted_home), "scrape-posters", "--urls", str(bad)]) == 1
    assert "line 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(planted_home), "scrape-posters", "--workers", "0"])
    assert exc.value.code == 2


def test_interrupted_cli_run_exits_130(planted_home, tmp_path, monkeypatch, capsys):
    import posters.scraper as scraper

    real = scraper.scrape_posters

    def interrupt_after_three(*a, **kw):
        n = []

        def hook(rec):
            n.append(rec)
            if len(n) == 3:
                raise KeyboardInterrupt

        return real(*a, on_record=hook, **kw)

    monkeypatch.setattr("posters.scrape_posters", interrupt_after_three)
    with FakeTmdb() as fake:
        url = fake.route("/img/a.jpg", Reply(body=jpeg_bytes()))
        listing = tmp_path / "urls.csv"
        listing.write_text("".join(f"{m},{url}\n" for m in range(1, 31)))
        rc = main(["--home", str(planted_home), "scrape-posters", "--urls", str(listing), "--rate", "0",
                   "--workers", "2"])
    assert rc == 130 and "interrupted" in capsys.readouterr().out
    store = PosterStore(planted_home, "ml-100k")
    assert 3 <= len(store.entries()) < 30 and not store.journal_path.exists()


@pytest.mark.realdata
def test_import_real_ml100k_posters(planted_home, tmp_path, capsys):
    real = shared_path("data", "posters", "ml-100k")
    src = tmp_path / "some"
    src.mkdir()
    for m in (1, 2, 3, 40, 65, 66, 67, 1000):        # planted ml-100k has ids 1..66
        if (real / f"{m}.jpg").exists():
            shutil.copyfile(real / f"{m}.jpg", src / f"{m}.jpg")  # links are refused by design
    rc = main(["--home", str(planted_home), "import-posters", str(src), "--json"])
    out = json.loads(capsys.readouterr().out)
    present = sorted(int(p.stem) for p in src.iterdir())
    assert rc == 0
    assert out["unknown"] == [m for m in present if m > 66]
    assert out["counts"] == {"ok": len([m for m in present if m <= 66])}
    entries = PosterStore(planted_home, "ml-100k").entries()
    assert [e.movie_id for e in entries] == [m for m in present if m <= 66]
    assert all(e.path.read_bytes() == (real / e.path.name).read_bytes() for e in entries)
