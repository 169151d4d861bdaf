// The page of `colorize serve`: photos chosen or dropped here go to POST /colorize on this origin, one request each,
// a few at a time; each answer is shown beside its photo, as an image or as the server's error message.
// What the server told the page about itself is in <body data-*> (engine/serve/ui.py).
import { zip } from "./zip.js";

const settings = document.body.dataset;
const AUTH = settings.auth === "1";
const CONCURRENCY = Math.max(1, Number(settings.concurrency) || 1);
const KEY_STORAGE = "colorize.apiKey";
const EXTENSIONS = { "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp" };
const HINTS = {
  401: "Enter this server's API key above, then Retry.",
  413: "The photo is over this server's size limit.",
  415: "Choose an image file (PNG, JPEG, WebP, GIF, BMP or TIFF).",
  429: "Too many photos at once from this browser: Retry in a moment.",
  503: "The server is busy or starting: Retry in a moment.",
};

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
const filesInput = $("files");
const strengthInput = $("strength");
const results = $("results");
const progress = $("progress");
const progressText = $("progress-text");
const downloadAll = $("download-all");
const clearButton = $("clear");

// -- settings -------------------------------------------------------------------------------------------------------

strengthInput.max = settings.maxStrength || strengthInput.max;
strengthInput.value = settings.strength || strengthInput.value;
$("strength-value").value = strengthInput.value;
strengthInput.addEventListener("input", () => ($("strength-value").value = strengthInput.value));
$("controls").addEventListener("submit", (event) => event.preventDefault());

if (AUTH) {
  $("key-field").hidden = false;
  keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("input", () => {
    const key = keyInput.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  });
} else {
  $("key-field").remove();
}

// -- requests, a few at a time --------------------------------------------------------------------------------------

const waiting = [];
let running = 0;
const tally = { total: 0, done: 0, failed: 0 };

function schedule(task) {
  if (running === 0 && waiting.length === 0) Object.assign(tally, { total: 0, done: 0, failed: 0 });
  tally.total += 1;
  waiting.push(task);
  showProgress();
  pump();
}

function pump() {
  while (running < CONCURRENCY && waiting.length) {
    const task = waiting.shift();
    running += 1;
    task().then((outcome) => {
      running -= 1;
      if (outcome === "done") tally.done += 1;
      else if (outcome === "failed") tally.failed += 1;
      else tally.total -= 1; // superseded by a newer request for the same photo
      showProgress();
      pump();
    });
  }
}

function showProgress() {
  const finished = tally.done + tally.failed;
  const busy = finished < tally.total;
  progress.hidden = !busy;
  progress.max = Math.max(tally.total, 1);
  progress.value = finished;
  const failed = tally.failed ? `, ${tally.failed} failed` : "";
  progressText.textContent = tally.total === 0 ? "" : busy
    ? `Colorizing: ${finished} of ${tally.total} done${failed}`
    : `${tally.done} of ${tally.total} done${failed}`;
  downloadAll.disabled = !results.querySelector(".card[data-state=done]");
  clearButton.disabled = !results.children.length;
  $("empty").hidden = results.children.length > 0;
}

function outputName(file, type) {
  const stem = file.name.replace(/\.[^./]*$/, "") || "photo";
  return `${stem}-colour${EXTENSIONS[type] || ".png"}`;
}

async function errorText(response) {
  let message = response.statusText;
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    // not the service's JSON (a proxy's page, say): the status line says enough
  }
  const retry = response.headers.get("Retry-After");
  const hint = HINTS[response.status] || "";
  const after = retry && (response.status === 429 || response.status === 503) ? ` (Retry-After: ${retry} s)` : "";
  return `Error ${response.status}: ${message}. ${hint}${after}`.trim();
}

// -- one photo ------------------------------------------------------------------------------------------------------

let cards = 0;

class Card {
  constructor(file) {
    this.file = file;
    this.id = ++cards;
    this.controller = new AbortController(); // aborts the request in flight when the photo is removed
    this.queued = false; // a request for it is waiting for a free slot
    this.running = false; // a request for it is in flight
    this.again = false; // redo it once the request in flight is answered
    this.disposed = false;
    this.resultUrl = null;
    this.beforeUrl = URL.createObjectURL(file);
    this.element = this.build();
  }

  build() {
    const li = document.createElement("li");
    li.className = "card";
    li.innerHTML = `
      <h3 class="name"></h3>
      <div class="pair">
        <figure class="before"><img alt=""><figcaption>Before</figcaption></figure>
        <figure class="after"><img alt="" hidden><div class="placeholder"></div><figcaption>After</figcaption></figure>
      </div>
      <p class="status" role="status"></p>
      <p class="error" role="alert" hidden></p>
      <div class="actions">
        <label></label>
        <div class="range"><input type="range"><output></output></div>
        <a class="download" hidden>Download</a>
        <button type="button" class="retry" hidden>Retry</button>
      </div>`;
    const name = this.file.name || "photo";
    li.querySelector(".name").textContent = name;
    const before = li.querySelector(".before img");
    before.alt = `${name}, as uploaded`;
    before.addEventListener("load", () => {
      li.querySelector(".pair").style.setProperty("--ratio", `${before.naturalWidth} / ${before.naturalHeight}`);
    });
    before.addEventListener("error", () => before.replaceWith(this.noPreview()));
    before.src = this.beforeUrl;
    li.querySelector(".after img").alt = `${name}, colorized`;

    const strength = li.querySelector("input[type=range]");
    const label = li.querySelector(".actions label");
    strength.id = `strength-${this.id}`;
    label.htmlFor = strength.id;
    label.textContent = "Colour strength";
    strength.setAttribute("aria-describedby", `name-${this.id}`);
    li.querySelector(".name").id = `name-${this.id}`;
    for (const attr of ["min", "max", "step"]) strength[attr] = strengthInput[attr];
    strength.value = strengthInput.value;
    const shown = li.querySelector(".actions output");
    shown.value = strength.value;
    strength.addEventListener("input", () => (shown.value = strength.value));
    strength.addEventListener("change", () => this.colorize());
    this.strength = strength;

    const download = li.querySelector(".download");
    download.setAttribute("aria-label", `Download ${name} in colour`);
    const retry = li.querySelector(".retry");
    retry.setAttribute("aria-label", `Retry ${name}`);
    retry.addEventListener("click", () => this.colorize());
    return li;
  }

  noPreview() {
    const box = document.createElement("div");
    box.className = "placeholder no-preview";
    box.textContent = "No preview";
    return box;
  }

  show(state, status, error = "") {
    this.element.dataset.state = state;
    this.element.querySelector(".status").textContent = status;
    const alert = this.element.querySelector(".error");
    alert.hidden = !error;
    alert.textContent = error;
    this.element.querySelector(".retry").hidden = state !== "failed";
  }

  // One request per photo at a time: asked again while one is waiting, the waiting one takes the newest strength
  // when it starts; asked while one runs, the photo is redone once that one is answered. (Cancelling the running one
  // would not stop the server working on it, nor its count against this browser's share of the server.)
  colorize() {
    if (this.disposed || this.queued) return;
    if (this.running) {
      this.again = true;
      this.show("waiting", "Waiting…");
      return;
    }
    this.queued = true;
    this.show("waiting", "Waiting…");
    schedule(async () => {
      this.queued = false;
      if (this.disposed) return "superseded";
      this.running = true;
      try {
        return await this.request(this.strength.value);
      } finally {
        this.running = false;
        if (this.again && !this.disposed) {
          this.again = false;
          queueMicrotask(() => this.colorize());
        }
      }
    });
  }

  async request(strength) {
    this.show("working", `Colorizing at strength ${strength}…`);
    const headers = {};
    const key = keyInput ? keyInput.value.trim() : "";
    if (AUTH && key) headers.Authorization = `Bearer ${key}`;
    const signal = this.controller.signal;
    try {
      const response = await fetch(`/colorize?strength=${encodeURIComponent(strength)}`, {
        method: "POST", body: this.file, headers, signal, cache: "no-store",
      });
      const blob = response.ok ? await response.blob() : null;
      const message = response.ok ? "" : await errorText(response);
      if (this.disposed || this.again) return "superseded";
      if (!response.ok) {
        this.show("failed", "", message);
        return "failed";
      }
      this.setResult(blob, strength);
      return "done";
    } catch (error) {
      if (this.disposed || this.again) return "superseded";
      this.show("failed", "", `Could not reach the server (${error.message}). Retry when it is back.`);
      return "failed";
    }
  }

  setResult(blob, strength) {
    if (this.resultUrl) URL.revokeObjectURL(this.resultUrl);
    this.resultUrl = URL.createObjectURL(blob);
    this.result = { blob, name: outputName(this.file, blob.type) };
    const after = this.element.querySelector(".after img");
    after.src = this.resultUrl;
    after.hidden = false;
    this.element.querySelector(".after .placeholder").hidden = true;
    const download = this.element.querySelector(".download");
    download.href = this.resultUrl;
    download.download = this.result.name;
    download.hidden = false;
    this.show("done", `Done at strength ${strength}.`);
  }

  dispose() {
    this.disposed = true;
    this.controller.abort();
    URL.revokeObjectURL(this.beforeUrl);
    if (this.resultUrl) URL.revokeObjectURL(this.resultUrl);
    this.element.remove();
  }
}

const shown = new Map(); // element -> Card

function addFiles(files) {
  for (const file of files) {
    const card = new Card(file);
    shown.set(card.element, card);
    results.append(card.element);
    card.colorize();
  }
  showProgress();
}

// -- choosing, dropping, downloading ---------------------------------------------------------------------------------

filesInput.addEventListener("change", () => {
  addFiles([...filesInput.files]);
  filesInput.value = ""; // the same file chosen again is a new photo
});

const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
document.addEventListener("dragover", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", (event) => {
  if (event.relatedTarget === null) document.body.classList.remove("dragging");
});
document.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  document.body.classList.remove("dragging");
  addFiles([...event.dataTransfer.files]);
});

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

downloadAll.addEventListener("click", async () => {
  const taken = new Set();
  const entries = [];
  for (const card of shown.values()) {
    if (card.element.dataset.state !== "done") continue;
    let name = card.result.name;
    for (let n = 2; taken.has(name); n++) name = card.result.name.replace(/(\.[^.]*)$/, ` (${n})$1`);
    taken.add(name);
    entries.push({ name, blob: card.result.blob });
  }
  if (entries.length) save(await zip(entries), "colorized.zip");
});

clearButton.addEventListener("click", () => {
  for (const card of shown.values()) card.dispose();
  shown.clear();
  waiting.length = 0;
  Object.assign(tally, { total: running, done: 0, failed: 0 });
  showProgress();
  filesInput.focus();
});

showProgress();
