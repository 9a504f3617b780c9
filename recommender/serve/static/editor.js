"use strict";
// How each suggestion relates to the article (README "Relatedness, labels, placements").
const RELATIONS = {
  same_story: "dieselbe Geschichte", follow_up: "Fortsetzung", background: "Hintergrund",
  related_topic: "verwandtes Thema", fallback: "Lückenfüller (neueste)",
};
// A file of its own, not inline: the page's Content-Security-Policy allows scripts from this origin only.
// Every text from the index is inserted with textContent, never as HTML: titles may contain markup.
const MAX_K = Number(document.body.dataset.maxK);
const K = Number(document.body.dataset.defaultK);
let token = sessionStorage.getItem("recommender-token") || "";
let current = null;

const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function status(text) { $("status").textContent = text || ""; }

async function api(method, path, body) {
  const options = { method, headers: { "Authorization": "Bearer " + token } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const answer = await fetch(path, options);
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.message || answer.statusText);
  return data;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("recommender-token", token);
  $("token").value = "";
  status(token ? "Token übernommen." : "Kein Token.");
  if (token) loadClicks();
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  try {
    const data = await api("GET", "/v1/articles?q=" + encodeURIComponent(query));
    const list = $("results");
    list.replaceChildren();
    for (const article of data.articles) {
      const item = el("li", article.title + " (" + article.id + ", " + article.published_at.slice(0, 10) + ")");
      item.dataset.id = article.id;
      item.addEventListener("click", () => load(article.id));
      list.append(item);
    }
    status(data.articles.length ? "" : "Nichts gefunden.");
    if (data.articles.length === 1) load(data.articles[0].id);
  } catch (error) { status(error.message); }
});

function reasons(item) {
  const why = el("div", null, "why");
  const parts = Object.entries(item.signals)
    .map(([name, part]) => name + " " + part.similarity.toFixed(2) + (part.weight ? " ×" + part.weight : " (nur Dubletten)"));
  why.append(el("span", "Ähnlichkeit " + item.similarity.toFixed(3) + " = " + parts.join(", ")));
  why.append(el("span", "Alter " + item.age_days + " Tage, Frische " + item.freshness.toFixed(2) +
                        " (Anteil " + item.recency_weight + ")"));
  if (item.shared_names.length) why.append(el("span", "Gemeinsame Namen: " + item.shared_names.join(", ")));
  if (item.shared_terms.length) why.append(el("span", "Gemeinsame Begriffe: " + item.shared_terms.join(", ")));
  if (item.hidden_versions.length) why.append(el("span", "Ältere Fassungen ausgeblendet: " + item.hidden_versions.join(", ")));
  if (item.pinned) why.append(el("span", "Von der Redaktion angeheftet"));
  return why;
}

function button(label, action) {
  const node = el("button", label);
  node.type = "button";
  node.addEventListener("click", async () => {
    try { await action(); await load(current); } catch (error) { status(error.message); }
  });
  return node;
}

const change = (method, body) => api(method, "/v1/articles/" + encodeURIComponent(current) + "/overrides", body);

async function load(id) {
  current = id;
  try {
    const data = await api("GET", "/v1/articles/" + encodeURIComponent(id) + "/explain?k=" + K);
    $("article").hidden = false;
    $("article-title").textContent = data.article.title;
    $("article-meta").textContent = [data.article.id, data.article.lang, data.article.section,
                                     data.article.published_at.slice(0, 10), "Index " + data.index_version,
                                     "Profil " + data.profile].join(" · ");
    const effects = Object.entries(data.removed).filter(([, n]) => n > 0).map(([what, n]) => what + ": " + n);
    $("list-effects").textContent = "Geprüft: " + data.considered + " Artikel" +
      (effects.length ? "; ausgeschlossen durch " + effects.join(", ") : "");
    const body = $("items");
    body.replaceChildren();
    for (const item of data.items) {
      const row = el("tr", null, item.pinned ? "pinned" : "");
      row.dataset.id = item.id;
      row.append(el("td", item.position));
      const cell = el("td");
      const link = el("a", item.title);
      link.href = item.url || "#";
      cell.append(link);
      if (item.pinned) cell.append(" ", el("span", "angeheftet", "badge"));
      cell.append(" ", el("span", RELATIONS[item.relation] || item.relation, "badge relation " + item.relation));
      cell.append(el("div", item.teaser, "meta"));
      cell.append(el("div", [item.id, item.lang, item.section, item.published_at.slice(0, 10),
                             "Score " + item.score.toFixed(3), "Verwandtschaft " + item.relatedness.toFixed(2)]
                              .join(" · "), "meta"));
      row.append(cell);
      const why = el("td");
      why.append(reasons(item));
      row.append(why);
      const actions = el("td");
      const position = el("input");
      position.type = "number"; position.min = 1; position.max = MAX_K; position.value = item.position;
      position.setAttribute("aria-label", "Position");
      actions.append(position);
      actions.append(button("Anheften", () => change("PUT", { action: "pin", target: item.id,
                                                               position: Number(position.value), who: "editor" })));
      if (item.pinned) actions.append(button("Lösen", () => change("DELETE", { action: "pin", target: item.id })));
      actions.append(button("Blockieren", () => change("PUT", { action: "block", target: item.id, who: "editor" })));
      actions.append(button("Überall blockieren",
                            () => change("PUT", { action: "block_everywhere", target: item.id, who: "editor" })));
      row.append(actions);
      body.append(row);
    }
    const overrides = $("overrides");
    overrides.replaceChildren();
    for (const o of data.overrides) {
      const entry = el("li", o.action + " " + o.target_id + (o.position ? " auf Platz " + o.position : "") +
                             " – " + o.who + ", " + o.created_at + (o.why ? ": " + o.why : "") + " ");
      entry.append(button("Aufheben", () => change("DELETE", { action: o.action, target: o.target_id })));
      overrides.append(entry);
    }
    if (!data.overrides.length) overrides.append(el("li", "keine"));
    status("");
  } catch (error) { status(error.message); }
}

// Readers' clicks per placement (GET /v1/stats/clicks): each A/B arm's rate with its interval, positions, days.
function percent(value) { return value === null ? "–" : (100 * value).toFixed(1).replace(".", ",") + " %"; }
function row(cells, header) {
  const tr = el("tr");
  for (const cell of cells) tr.append(el(header ? "th" : "td", cell));
  return tr;
}
function table(caption, head, rows) {
  const node = el("table", undefined, "figures");
  node.append(el("caption", caption), row(head, true));
  for (const cells of rows) node.append(row(cells));
  return node;
}
function placementFigures(p) {
  const box = el("div", undefined, "placement");
  box.dataset.placement = p.placement;
  box.append(el("h3", (p.placement || "(ohne Platzierung)") + ": " + p.impressions + " Impressionen, " + p.clicks +
                " Klicks, CTR " + percent(p.ctr)));
  box.append(table("A/B-Arme", ["Arm", "Profil", "Impressionen", "Klicks", "CTR", "95 %-Intervall", "Vergleich"],
    p.arms.map((a) => [a.arm || "(einer)", a.profile, a.impressions, a.clicks, percent(a.ctr),
                       percent(a.ctr_low) + " – " + percent(a.ctr_high), a.verdict])));
  if (p.note) box.append(el("p", p.note, "meta note"));
  box.append(table("Nach Position", ["Position", "Impressionen", "Klicks", "CTR"],
    p.positions.map((r) => [r.position, r.impressions, r.clicks, percent(r.ctr)])));
  box.append(table("Nach Tag (UTC)", ["Tag", "Impressionen", "Klicks", "CTR"],
    p.days.map((r) => [r.day, r.impressions, r.clicks, percent(r.ctr)])));
  return box;
}
async function loadClicks() {
  try {
    const days = Math.min(366, Math.max(1, Number($("clicks-days").value) || 30));
    const data = await api("GET", "/v1/stats/clicks?days=" + days);
    const target = $("clicks-figures");
    target.replaceChildren(...data.placements.map(placementFigures));
    if (!data.placements.length) target.append(el("p", "Noch keine Ereignisse seit " + data.since + ".", "meta"));
  } catch (error) { status(error.message); }
}
$("clicks-form").addEventListener("submit", (event) => { event.preventDefault(); loadClicks(); });
