// posterec page: plain JS, no build step, no external requests.
// Routes (in the URL hash): "" (search), "#movie/<id>", "#users", "#user/<id>".
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  movieId: null,
  weight: null,          // null: the model's default visual weight
  defaultWeight: null,   // the model's default, from /health (or a similar response) when it says
  hasPosters: true,
  searchTimer: null,
  searchSeq: 0,
  similarSeq: 0,
};

async function api(path) {
  const resp = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (!resp.ok) {
    const detail = body && body.detail;
    const msg = typeof detail === "string" ? detail : `${resp.status} ${resp.statusText}`;
    throw new Error(msg);
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c);
  }
  return node;
}

// A poster image, or a placeholder tile with the title when the movie has none.
function poster(movie, size = "") {
  if (movie.poster_url) {
    return el("img", { class: `poster ${size}`, src: movie.poster_url, alt: `poster of ${movie.title}`,
                       loading: "lazy" });
  }
  const hue = (movie.movie_id * 47) % 360;
  const ph = el("div", { class: `poster placeholder ${size}`, role: "img",
                         "aria-label": `no poster for ${movie.title}` },
                el("span", {}, movie.title));
  ph.style.background = `linear-gradient(160deg, hsl(${hue} 35% 32%), hsl(${(hue + 40) % 360} 40% 18%))`;
  return ph;
}

function yearOf(m) { return m.year ? ` (${m.year})` : ""; }

// What a score means, shown as the score's tooltip (and beside each heading).
const SCORE_HELP = {
  similar: "Cosine similarity in the blended space: (1 − w) × cosine of the rating vectors + w × cosine "
    + "of the poster embeddings, w being the \"Similar by\" weight. 1 means the same direction, "
    + "0 unrelated; it is not a rating.",
  lookalike: "Cosine similarity of the two posters' embeddings: 1 means they look the same, 0 unrelated.",
  recommend: "Ranking score: how strongly the ranking model puts this movie forward for this user. "
    + "Higher comes first; it is comparable only within this list and is not a predicted rating "
    + "of 1 to 5 stars.",
};

function card(movie, { extra = null, kind = null } = {}) {
  const score = typeof movie.score === "number"
    ? el("span", { class: "score", title: SCORE_HELP[kind] || "score" }, movie.score.toFixed(3)) : null;
  const link = el("a", { class: "card", href: `#movie/${movie.movie_id}`,
                         title: `${movie.title}${yearOf(movie)}`, dataset: { movieId: movie.movie_id } },
                  poster(movie),
                  el("div", { class: "card-title" }, movie.title),
                  el("div", { class: "card-meta" }, movie.year ? String(movie.year) : "", score),
                  extra);
  return link;
}

function fill(container, nodes, emptyText) {
  container.replaceChildren(...nodes);
  if (!nodes.length && emptyText) container.append(el("p", { class: "note" }, emptyText));
}

// ---------------------------------------------------------------- search

function onSearchInput() {
  clearTimeout(state.searchTimer);
  state.searchTimer = setTimeout(runSearch, 250);
}

// Enter opens the first match (searching first when the list is not up to date).
async function onSearchKey(e) {
  if (e.key !== "Enter") return;
  e.preventDefault();
  clearTimeout(state.searchTimer);
  if (state.shownQuery !== $("search").value.trim()) await runSearch();
  const first = $("results").querySelector(".result");
  if (first) location.hash = first.getAttribute("href");
}

async function runSearch() {
  const q = $("search").value.trim();
  const seq = ++state.searchSeq;
  if (!q) { $("results").replaceChildren(); $("search-note").textContent = ""; state.shownQuery = q; return; }
  try {
    const body = await api(`/movies?q=${encodeURIComponent(q)}&n=25`);
    if (seq !== state.searchSeq) return;  // a newer search answered first
    const items = body.results.map((m) =>
      el("li", {}, el("a", { href: `#movie/${m.movie_id}`, class: "result", dataset: { movieId: m.movie_id } },
                      poster(m, "thumb"),
                      el("span", {}, el("strong", {}, m.title), el("small", {}, yearOf(m))))));
    $("results").replaceChildren(...items);
    state.shownQuery = q;
    $("search-note").textContent = items.length ? "" : `No title contains “${q}”.`;
  } catch (err) {
    $("search-note").textContent = err.message;
  }
}

// ---------------------------------------------------------------- a movie

async function showMovie(id) {
  state.movieId = id;
  $("welcome").hidden = true;
  $("detail").hidden = false;
  $("lookalike-note").textContent = "";
  $("similar-note").textContent = "";
  try {
    const m = await api(`/movies/${id}`);
    const hero = [poster(m, "large")];
    if (!m.has_poster) hero.push(el("p", { class: "no-poster" }, "No poster for this movie"));
    $("hero-poster").replaceChildren(...hero);
    $("hero-title").textContent = `${m.title}${yearOf(m)}`;
    $("hero-meta").textContent = m.genres.join(" · ");
    loadLookalike(id, m.has_poster);
  } catch (err) {
    $("hero-poster").replaceChildren();
    $("hero-title").textContent = `Movie ${id}`;
    $("hero-meta").textContent = err.message;
    fill($("lookalike"), []); fill($("similar"), []);
    return;
  }
  loadSimilar(id);
}

// Look-alikes need this movie's poster: without one, a calm note and no request at all.
async function loadLookalike(id, hasPoster) {
  const box = $("lookalike");
  if (!state.hasPosters) {
    fill(box, []);
    $("lookalike-note").textContent = "This model has no posters: collaborative only.";
    return;
  }
  if (!hasPoster) {
    fill(box, []);
    $("lookalike-note").textContent = "Look-alikes need a poster. The similar movies below come from ratings.";
    return;
  }
  try {
    const body = await api(`/movies/${id}/lookalike?n=12`);
    if (state.movieId !== id) return;
    fill(box, body.results.map((m) => card(m, { kind: "lookalike" })), "No look-alikes.");
  } catch (err) {
    fill(box, []);
    $("lookalike-note").textContent = err.message;
  }
}

async function loadSimilar(id) {
  const seq = ++state.similarSeq;
  const w = state.weight === null ? "" : `&visual_weight=${state.weight}`;
  try {
    const body = await api(`/movies/${id}/similar?n=12${w}`);
    if (seq !== state.similarSeq) return;
    learnDefault(body.default_visual_weight);
    fill($("similar"), body.results.map((m) => card(m, { kind: "similar" })), "Nothing similar.");
    $("similar-note").textContent = "";
  } catch (err) {
    fill($("similar"), []);
    $("similar-note").textContent = err.message;
  }
}

function onWeight() {
  state.weight = Number($("weight").value);
  showWeight();
  clearTimeout(state.weightTimer);
  state.weightTimer = setTimeout(() => { if (state.movieId !== null) loadSimilar(state.movieId); }, 150);
}

function mix(w) {
  return `${Math.round((1 - w) * 100)}% ratings · ${Math.round(w * 100)}% posters`;
}

// The model's default weight, when the server tells it: the slider starts (and resets) there.
function learnDefault(w) {
  if (typeof w !== "number" || !(w >= 0 && w <= 1) || state.defaultWeight === w) return;
  state.defaultWeight = w;
  if (state.weight === null) { $("weight").value = w; showWeight(); }
}

function showWeight() {
  const w = state.weight;
  const d = state.defaultWeight;
  $("weight-label").textContent = w !== null ? mix(w)
    : d === null ? "model default" : `model default (${mix(d)})`;
  $("weight-reset").hidden = w === null;
}

// ---------------------------------------------------------------- users

async function loadUserSample() {
  try {
    const body = await api("/users?n=30");
    const pick = $("user-pick");
    pick.replaceChildren(el("option", { value: "" }, "or pick one…"),
                         ...body.user_ids.map((u) => el("option", { value: u }, `user ${u}`)));
  } catch (_) { /* the picker stays empty; typing an id still works */ }
}

async function showUser(id) {
  $("user-id").value = id;
  $("user-note").textContent = "Loading…";
  $("recs-help").hidden = true;
  const w = state.weight === null ? "" : `&visual_weight=${state.weight}`;
  try {
    const body = await api(`/users/${id}/recommendations?n=18${w}`);
    const cards = body.results.map((m) => card(m, {
      kind: "recommend",
      extra: m.because
        ? el("div", { class: "because" }, "because you liked ",
             el("span", { class: "because-title" }, m.because.title))
        : null,
    }));
    fill($("recs"), cards, "No recommendations.");
    $("user-note").textContent = `Recommendations for user ${id}`;
    $("recs-help").hidden = !cards.length;
  } catch (err) {
    fill($("recs"), []);
    $("user-note").textContent = err.message;
  }
}

// ---------------------------------------------------------------- routing

function route() {
  const hash = location.hash.replace(/^#/, "");
  const [page, arg] = hash.split("/");
  const users = page === "users" || page === "user";
  $("movies-view").hidden = users;
  $("users-view").hidden = !users;
  $("tab-movies").classList.toggle("active", !users);
  $("tab-users").classList.toggle("active", users);
  if (page === "movie" && /^\d+$/.test(arg)) showMovie(Number(arg));
  if (page === "user" && /^\d+$/.test(arg)) showUser(Number(arg));
}

function goUser(id) {
  if (id !== "" && /^\d+$/.test(String(id))) location.hash = `#user/${id}`;
}

async function init() {
  $("search").addEventListener("input", onSearchInput);
  $("search").addEventListener("keydown", onSearchKey);
  for (const [id, kind] of [["similar-help", "similar"], ["lookalike-help", "lookalike"], ["recs-help", "recommend"]]) {
    if ($(id)) $(id).title = SCORE_HELP[kind];
  }
  $("weight").addEventListener("input", onWeight);
  $("weight-reset").addEventListener("click", () => {
    state.weight = null;
    if (state.defaultWeight !== null) $("weight").value = state.defaultWeight;
    showWeight();
    if (state.movieId !== null) loadSimilar(state.movieId);
  });
  $("user-go").addEventListener("click", () => goUser($("user-id").value));
  $("user-id").addEventListener("keydown", (e) => { if (e.key === "Enter") goUser($("user-id").value); });
  $("user-pick").addEventListener("change", (e) => goUser(e.target.value));
  window.addEventListener("hashchange", route);
  try {
    const h = await api("/health");
    state.hasPosters = h.has_posters;
    learnDefault(h.default_visual_weight);
    $("model").textContent = `${h.dataset} · ${h.version}` + (h.has_posters ? "" : " · no posters");
    if (!h.has_posters) {
      $("lookalike-heading").hidden = true;
      $("weight-box").hidden = true;
    }
  } catch (err) {
    $("model").textContent = `server unavailable: ${err.message}`;
  }
  showWeight();
  loadUserSample();
  route();
}

init();
