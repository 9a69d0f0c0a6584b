// The visitor page: like posters on a wall, get recommendations at once (POST /recommendations).
// State lives in the URL (?liked=1,50,181&w=0.5&seed=3), so a page can be shared and reloaded.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const WALL_N = 24;
  const RECS_N = 12;
  const state = { liked: [], titles: {}, seed: 0, weight: 0, wall: [], request: 0 };

  function readUrl() {
    const q = new URLSearchParams(location.search);
    state.liked = (q.get("liked") || "").split(",").filter((x) => /^[0-9]{1,10}$/.test(x)).map(Number);
    state.liked = [...new Set(state.liked)].slice(0, 200);
    const seed = Number(q.get("seed"));
    state.seed = Number.isInteger(seed) && seed >= 0 ? seed : 0;
    const w = Number(q.get("w"));
    state.weight = q.has("w") && w >= 0 && w <= 1 ? Math.round(w * 20) / 20 : 0;
  }

  function writeUrl() {
    const q = new URLSearchParams();
    if (state.liked.length) q.set("liked", state.liked.join(","));
    if (state.weight) q.set("w", String(state.weight));
    if (state.seed) q.set("seed", String(state.seed));
    const query = q.toString().replace(/%2C/g, ",");
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function poster(movie) {
    if (movie.poster_url) {
      const img = el("img", "poster");
      img.src = movie.poster_url;
      img.alt = "";
      img.loading = "lazy";
      return img;
    }
    const ph = el("div", "poster placeholder");
    ph.append(el("span", "", movie.title));
    return ph;
  }

  function label(movie) {
    return movie.year ? `${movie.title} (${movie.year})` : movie.title;
  }

  async function getJson(url, options) {
    const r = await fetch(url, options);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const d = body.detail;
      throw new Error(Array.isArray(d) ? d.map((x) => x.msg).join("; ") : d || `HTTP ${r.status}`);
    }
    return body;
  }

  // -- the wall ------------------------------------------------------------------------------
  async function deal() {
    $("wall-note").textContent = "(loading…)";
    try {
      const exclude = state.liked.join(",");
      const body = await getJson(`/wall?n=${WALL_N}&seed=${state.seed}${exclude ? `&exclude=${exclude}` : ""}`);
      state.wall = body.results;
      $("model").textContent = `model ${body.version}`;
      drawWall();
      $("wall-note").textContent = state.wall.length ? "(click the ones you like)" : "(this model has no posters)";
    } catch (err) {
      $("wall-note").textContent = `(could not load posters: ${err.message})`;
    }
  }

  function drawWall() {
    const wall = $("wall");
    wall.replaceChildren();
    for (const movie of state.wall) {
      state.titles[movie.movie_id] = label(movie);
      const card = el("button", "wall-card");
      card.type = "button";
      card.dataset.movieId = String(movie.movie_id);
      card.setAttribute("aria-pressed", String(state.liked.includes(movie.movie_id)));
      card.setAttribute("aria-label", `${label(movie)}: like`);
      card.append(poster(movie), el("div", "card-title", label(movie)));
      card.addEventListener("click", () => toggle(movie.movie_id));
      wall.append(card);
    }
  }

  function toggle(movieId) {
    const k = state.liked.indexOf(movieId);
    if (k >= 0) state.liked.splice(k, 1);
    else state.liked.push(movieId);
    for (const card of $("wall").querySelectorAll(".wall-card")) {
      card.setAttribute("aria-pressed", String(state.liked.includes(Number(card.dataset.movieId))));
    }
    changed();
  }

  // -- likes and recommendations ----------------------------------------------------------------
  function drawLiked() {
    const line = $("liked-line");
    line.replaceChildren();
    $("clear").disabled = !state.liked.length;
    if (!state.liked.length) {
      line.textContent = "You have not liked any poster yet.";
      return;
    }
    line.append(el("span", "", `You like ${state.liked.length}: `));
    for (const id of state.liked) {
      const chip = el("button", "chip", `${state.titles[id] || `movie ${id}`} ✕`);
      chip.type = "button";
      chip.setAttribute("aria-label", `remove ${state.titles[id] || `movie ${id}`} from your likes`);
      chip.addEventListener("click", () => toggle(id));
      line.append(chip);
    }
  }

  async function fetchTitles() {
    const missing = state.liked.filter((id) => !state.titles[id]);
    await Promise.all(missing.map(async (id) => {
      try {
        state.titles[id] = label(await getJson(`/movies/${id}`));
      } catch (err) {
        state.titles[id] = `movie ${id}`;
      }
    }));
    if (missing.length) drawLiked();
  }

  async function recommend() {
    const ticket = ++state.request;
    const note = $("recs-note");
    note.textContent = "…";
    let body;
    try {
      body = await getJson("/recommendations", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ liked: state.liked, n: RECS_N, visual_weight: state.weight }),
      });
    } catch (err) {
      if (ticket === state.request) note.textContent = `Could not recommend: ${err.message}`;
      return;
    }
    if (ticket !== state.request) return; // a newer request is on its way
    $("model").textContent = `model ${body.version}`;
    note.textContent = body.basis === "popular"
      ? "Nothing liked yet: these are the most popular movies. Like a few posters to make it yours."
      : `From the ${state.liked.length} poster${state.liked.length > 1 ? "s" : ""} you like.`;
    const looks = state.weight >= 0.5;
    const grid = $("recs");
    grid.replaceChildren();
    for (const movie of body.results) {
      state.titles[movie.movie_id] = state.titles[movie.movie_id] || label(movie);
      const card = el("a", "card");
      card.href = `/#movie/${movie.movie_id}`;
      card.append(poster(movie), el("div", "card-title", label(movie)));
      const meta = el("div", "card-meta");
      meta.append(el("span", "", (movie.genres || []).slice(0, 2).join(", ")));
      card.append(meta);
      if (movie.because) {
        const why = el("div", "because", looks ? "looks like " : "because you liked ");
        why.append(el("span", "because-title", movie.because.title));
        card.append(why);
      }
      grid.append(card);
    }
  }

  function changed() {
    writeUrl();
    drawLiked();
    recommend();
  }

  function showWeight() {
    $("weight-label").textContent = state.weight === 0 ? "ratings" : state.weight === 1 ? "posters"
      : `${Math.round((1 - state.weight) * 100)}% ratings, ${Math.round(state.weight * 100)}% posters`;
  }

  // -- wiring --------------------------------------------------------------------------------
  readUrl();
  $("weight").value = String(state.weight);
  showWeight();
  let slide = null;
  $("weight").addEventListener("input", () => {
    state.weight = Math.round(Number($("weight").value) * 20) / 20;
    showWeight();
    clearTimeout(slide);
    slide = setTimeout(changed, 150);
  });
  $("deal").addEventListener("click", () => {
    state.seed += 1;
    writeUrl();
    deal();
  });
  $("clear").addEventListener("click", () => {
    state.liked = [];
    drawWall();
    changed();
  });
  deal().then(() => {
    drawLiked();
    fetchTitles();
    recommend();
  });
})();
