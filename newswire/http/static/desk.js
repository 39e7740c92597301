// The desk: stories as they form, live from GET /v1/streams/articles (Server-Sent Events).
// EventSource cannot send a bearer token, so the stream is read with fetch() and parsed here.
"use strict";
const state = { stories: new Map(), seen: new Set(), open: new Set(), lastId: null, topic: "",
  token: localStorage.getItem("newswire-token") || "" };
const $ = (id) => document.getElementById(id);

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function getJson(path) {
  const reply = await fetch(path, { headers: headers({ Accept: "application/json" }) });
  if (reply.status === 401) { askToken(); throw new Error("token required"); }
  if (!reply.ok) throw new Error(path + ": " + reply.status);
  return reply.json();
}

function askToken() {
  $("login").hidden = false;
  setStatus("a token is required", false);
}

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", live);
}

function storyOf(id) {
  if (!state.stories.has(id)) {
    state.stories.set(id, { id, headline: "", url: "", sources: new Set(), first: null, last: null, count: 0, topics: new Map() });
  }
  return state.stories.get(id);
}

function addArticle(doc, firstSeen) {
  if (!doc || state.seen.has(doc.id)) return false;
  state.seen.add(doc.id);
  const story = storyOf(doc.story_id || doc.id);
  story.count += 1;
  if (!story.last || firstSeen >= story.last) { story.headline = doc.title; story.url = doc.url; story.last = firstSeen; }
  if (!story.first || firstSeen < story.first) story.first = firstSeen;
  if (doc.source) story.sources.add(doc.source);
  for (const t of doc.topics || []) {
    const tag = story.topics.get(t.slug) || { slug: t.slug, evidence: [] };
    for (const e of t.evidence || []) if (!tag.evidence.some((x) => x.snippet === e.snippet)) tag.evidence.push(e);
    story.topics.set(t.slug, tag);
  }
  return true;
}

function time(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props || {});
  for (const c of children) node.append(c);
  return node;
}

function tagNode(story, tag) {
  const list = el("ul");
  for (const e of tag.evidence) list.append(el("li", { textContent: "“" + e.snippet + "” (" + e.term + ", " + e.field + ")" }));
  const key = story.id + " " + tag.slug;
  const node = el("details", { className: "tag", open: state.open.has(key) }, el("summary", { textContent: tag.slug }), list);
  node.addEventListener("toggle", () => (node.open ? state.open.add(key) : state.open.delete(key)));
  return node;
}

function storyNode(story) {
  const title = el("h2", {}, el("a", { href: story.url, textContent: story.headline, target: "_blank", rel: "noopener" }));
  const n = story.count === 1 ? "1 article" : story.count + " articles";
  const meta = el("div", { className: "meta", textContent: n + " · " + [...story.sources].join(", ") + " · first seen " + time(story.first) });
  const tags = el("div", { className: "tags" }, ...[...story.topics.values()].map((t) => tagNode(story, t)));
  const node = el("li", { className: "story" }, title, meta, tags);
  node.dataset.storyId = story.id;
  node.dataset.count = story.count;
  node.dataset.topics = [...story.topics.keys()].join(" ");
  return node;
}

function render(freshId) {
  const list = [...state.stories.values()]
    .filter((s) => !state.topic || s.topics.has(state.topic))
    .sort((a, b) => (a.last < b.last ? 1 : a.last > b.last ? -1 : 0));
  $("stories").replaceChildren(...list.map((s) => {
    const node = storyNode(s);
    if (s.id === freshId) node.classList.add("fresh");
    return node;
  }));
  $("empty").hidden = list.length > 0;
}

async function loadTopics() {
  const { topics } = await getJson("/v1/topics");
  for (const t of topics) $("topic").append(el("option", { value: t.slug, textContent: t.name || t.slug }));
}

async function loadStories() {
  const reply = await getJson("/v1/stories?limit=200");
  for (const story of reply.stories) for (const a of story.articles) addArticle(a.document, a.first_seen);
  state.lastId = reply.last_event_id;
  render();
}

function entryTime(id) {
  return new Date(Number(String(id).split("-")[0])).toISOString();
}

function onEvent(event) {
  if (event.id) state.lastId = event.id;
  if (event.type === "dropped") throw new Error("dropped");
  if (event.type !== "article") return;
  const doc = JSON.parse(event.data);
  if (addArticle(doc, entryTime(event.id))) render(doc.story_id);
}

function parseEvents(buffer, handle) {
  const blocks = buffer.split(/\r?\n\r?\n/);
  const rest = blocks.pop();
  for (const block of blocks) {
    const event = { type: "message", data: [], id: null };
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const field = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (field === "event") event.type = value;
      else if (field === "data") event.data.push(value);
      else if (field === "id") event.id = value;
    }
    if (event.data.length || event.id) handle({ type: event.type, id: event.id, data: event.data.join("\n") });
  }
  return rest;
}

async function follow() {
  const query = state.lastId ? "?after=" + encodeURIComponent(state.lastId) : "";
  const reply = await fetch("/v1/streams/articles" + query, { headers: headers({ Accept: "text/event-stream" }) });
  if (reply.status === 401) { askToken(); return; }
  if (!reply.ok) throw new Error("stream: " + reply.status);
  setStatus("live", true);
  const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = parseEvents(buffer + value, onEvent);
  }
}

async function followForever() {
  for (;;) {
    try { await follow(); } catch (err) { console.warn("stream:", err); }
    if (!$("login").hidden) return;
    setStatus("reconnecting…", false);
    await new Promise((r) => setTimeout(r, 3000));
  }
}

async function start() {
  try {
    await loadTopics();
    await loadStories();
  } catch (err) {
    console.warn(err);
    if (!$("login").hidden) return;
  }
  followForever();
}

$("topic").addEventListener("change", (e) => { state.topic = e.target.value; render(); });
$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("newswire-token", state.token);
  $("login").hidden = true;
  start();
});
start();
