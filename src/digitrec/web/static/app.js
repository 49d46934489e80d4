// The drawing page: draw (mouse, pen, finger) or upload a photo, and watch it being read: one digit
// (/v1/predict, with its ten probabilities and the 28x28 image the model saw) or a whole number
// (/v1/read, with a box per digit). Plain JS, no build step; /healthz tells the connection state.
"use strict";

const $ = (id) => document.getElementById(id);
const pad = $("pad"), ctx = pad.getContext("2d"), padWrap = $("pad-wrap");
const statusEl = $("status"), statusText = $("status-text");

// The pad is 280 units high (doubled on sharp screens); a number gets a pad twice as wide. The
// stroke is 1/17.5 of the height: MNIST's stroke-to-height ratio (~2.5 of 20 px) for a digit 70%
// of the pad high. The server brings any stroke into MNIST's range (preprocess.digit), so a big
// digit loses nothing, while a small one keeps its loops open: replaying 400 real pen digits at
// various sizes, 1/13 of the height read 356 and flagged 43; 1/17.5 read 376 and flagged 23.
const SCALE = Math.min(2, Math.max(1, Math.round(window.devicePixelRatio || 1)));
const HEIGHT = 280 * SCALE, STROKE = 16 * SCALE;
const THROTTLE_MS = 150;   // at most one request this often while drawing
const TIMEOUT_MS = 8000;   // a request slower than this counts as a lost connection

const MODES = {
  digit: { width: HEIGHT, endpoint: "/v1/predict?image28=true", hint: "Draw a digit here",
           tip: "Draw one digit, large and centred. Esc clears.", waiting: "Waiting for a digit" },
  number: { width: 2 * HEIGHT, endpoint: "/v1/read", hint: "Write a number here",
            tip: "Write the digits side by side, a little apart. Esc clears.", waiting: "Waiting for a number" },
};
let mode = "digit";

// ---------- drawing ----------
let drawing = false, last = null, inked = false;
let view = null;  // how an uploaded image sits on the pad: {k, x, y}; null for a drawing
// The uploaded file on the pad, while nothing is drawn over it: a mode change reads it again, and
// collect.js sends it as the correction's image.
let padUpload = null;

function clearPad() {
  ctx.fillStyle = "#fff";  // white paper, black ink: what the preprocessing expects of a photo
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  view = null;
  padUpload = null;
  padWrap.classList.remove("inked");
  $("boxes").replaceChildren();
}

function markInked() {
  inked = true;
  padWrap.classList.add("inked");
}

function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

function strokeTo(p) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = STROKE;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
}

pad.addEventListener("pointerdown", (e) => {
  if (e.pointerType === "mouse" && e.button !== 0) return;
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  drawing = true;
  padUpload = null;  // the pad as drawn on is what is read (and kept) from now
  last = padPoint(e);
  strokeTo(last);  // a tap leaves a dot
  markInked();
  changed();
});

pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
  for (const ev of events.length ? events : [e]) strokeTo(padPoint(ev));
  changed();
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    changed(true);
  });
}

function resetAll() {
  clearPad();
  epoch++;
  job = null;
  showEmpty();
}

function setMode(name) {
  const upload = padUpload;  // "Several digits: read it as a number" should not lose the photo
  mode = name;
  document.body.dataset.mode = name;
  for (const m of Object.keys(MODES)) $(`mode-${m}`).setAttribute("aria-selected", String(m === name));
  pad.width = MODES[name].width;
  pad.height = HEIGHT;
  $("pad-hint").textContent = MODES[name].hint;
  $("tip").textContent = MODES[name].tip;
  resetAll();
  if (upload) showUpload(upload);
}

$("mode-digit").addEventListener("click", () => setMode("digit"));
$("mode-number").addEventListener("click", () => setMode("number"));
$("clear").addEventListener("click", resetAll);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") resetAll(); });

// An uploaded image or photo: shown on the pad (you can still draw on it) and sent as the file itself.
for (const input of [$("upload"), $("photo")]) {
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    input.value = "";  // choosing the same file again still fires
    if (file) showUpload(file);
  });
}

async function showUpload(file) {
  clearPad();
  padUpload = file;
  try {
    const bitmap = await createImageBitmap(file);
    const k = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    view = { k, x: (pad.width - bitmap.width * k) / 2, y: (pad.height - bitmap.height * k) / 2 };
    ctx.drawImage(bitmap, view.x, view.y, bitmap.width * k, bitmap.height * k);
  } catch (err) {
    // The browser cannot show it; the server may still read it, or will say why not.
  }
  markInked();
  epoch++;
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  schedule(() => ({ body: form }), true);
}

// ---------- requests ----------
// One request at a time; while it runs, only the newest drawing waits to be sent next.
let job = null;          // () => fetch options for the next request, or null
let inFlight = false, lastSent = 0, timer = null;
let epoch = 0;           // bumped by Clear, uploads and mode changes: late answers for old pads are dropped
let online = false;
let minConfidence = null;  // the server's threshold (/v1/model): a number's digits under it are marked

function changed(now = false) {
  view = null;  // the pad itself is sent now, so boxes are in pad pixels
  schedule(() => ({
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ images: [pad.toDataURL("image/png")] }),
  }), now);
}

function schedule(makeRequest, now) {
  job = makeRequest;
  document.body.dataset.busy = "1";
  clearTimeout(timer);
  const wait = now ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
  timer = setTimeout(flush, wait);
}

async function flush() {
  if (inFlight || !job) return settle();
  if (!online) return;  // the health check sends it when the server is back
  const makeRequest = job, sentEpoch = epoch, sentMode = mode, sentView = view;
  job = null;
  inFlight = true;
  lastSent = performance.now();
  try {
    const res = await fetchWithTimeout(MODES[sentMode].endpoint, { method: "POST", ...makeRequest() });
    // 502-504: a proxy or the server itself is restarting; retry like a lost connection.
    if (res.status >= 502 && res.status <= 504) throw new Error(`server unavailable (${res.status})`);
    const answer = await res.json();
    if (sentEpoch !== epoch) return;
    if (!res.ok) showError(answer.detail || `request failed (${res.status})`);
    else if (sentMode === "digit") showPrediction(answer.predictions[0]);
    else showReading(answer.readings[0], sentView);
  } catch (err) {
    if (!job && sentEpoch === epoch) job = makeRequest;  // resend when the server is back
    setOnline(false);
  } finally {
    inFlight = false;
    if (job && online) schedule(job, false);
    settle();
  }
}

function settle() {
  if (!job && !inFlight) document.body.dataset.busy = "0";
}

function fetchWithTimeout(url, options = {}) {
  const abort = new AbortController();
  const t = setTimeout(() => abort.abort(), TIMEOUT_MS);
  return fetch(url, { ...options, signal: abort.signal, cache: "no-store" }).finally(() => clearTimeout(t));
}

// ---------- showing answers ----------
const digitEl = $("digit"), confEl = $("conf"), seenEl = $("seen"), errorEl = $("error");
const bars = [];
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.innerHTML = `<span class="d">${d}</span><span class="track"><span class="fill"></span></span><span class="p">0%</span>`;
  $("bars").appendChild(li);
  bars.push({ li, fill: li.querySelector(".fill"), p: li.querySelector(".p") });
}

function percent(x) {
  if (x >= 0.9995) return "100%";
  if (x < 0.0005) return "0%";
  return (x * 100).toFixed(1) + "%";
}

function showAnswer(text, conf) {
  errorEl.hidden = true;
  digitEl.textContent = text;
  digitEl.classList.toggle("empty", text === "?");
  confEl.textContent = conf;
  document.body.dataset.answer = text === "?" ? "" : text;
}

// What the page says of a flagged answer, by its reason (the server's words: digitrec.doubt).
function doubtText(p) {
  if (p.reason === "not a digit") return "That doesn't look like a digit";
  if (p.reason === "several digits") return "Several digits: read it as a number";  // a button (showPrediction)
  if (p.reason === "no ink") return "Nothing written here";  // its top three mean nothing: no hesitation
  const [first, second] = p.top;  // low confidence: the two digits it hesitates between
  return second ? `Not sure: ${first[0]} or ${second[0]}?` : `Not sure; maybe ${first[0]}`;
}

function showPrediction(p) {
  const best = p.top[0][0];
  showAnswer(p.digit ?? "?", p.uncertain ? doubtText(p) : `${percent(p.confidence)} sure`);
  if (p.uncertain && p.reason === "several digits") {
    // One click to what the user wanted: doubtText's words after the colon become a button to
    // number mode, which reads the same upload again (setMode).
    const [said, action] = doubtText(p).split(": ");
    const go = document.createElement("button");
    go.type = "button";
    go.id = "read-number";
    go.textContent = action;
    go.addEventListener("click", () => setMode("number"));
    confEl.textContent = `${said}: `;
    confEl.append(go);
  }
  document.body.dataset.doubt = p.uncertain ? (p.reason || "low confidence") : "";
  p.probabilities.forEach((q, d) => {
    bars[d].fill.style.width = `${(q * 100).toFixed(1)}%`;
    bars[d].p.textContent = percent(q);
    bars[d].li.classList.toggle("top", d === best);
  });
  if (p.image28) seenEl.src = `data:image/png;base64,${p.image28}`;
}

// A number, or one of its digits, to check: the server's own mark when it gives one, else its
// confidence under the server's --min-confidence (from /v1/model).
function toCheck(d) {
  if (typeof d.uncertain === "boolean") return d.uncertain;
  return minConfidence !== null && d.confidence < minConfidence;
}

function showReading(r, sentView) {
  const check = r.digits.filter(toCheck).length;
  // The whole number can be in doubt with every digit over the threshold: its confidence (the
  // chance that all of it is right) also weighs how the ink was split into digits.
  const doubtful = toCheck(r);
  const what = check ? `check ${check === 1 ? "1 digit" : `${check} digits`}` : doubtful ? "check the number" : "";
  showAnswer(r.lines.join(" / "), `${percent(r.confidence)} sure of all ${r.digits.length} digits` +
                                  (what ? ` · ${what}` : ""));
  document.body.dataset.doubt = what ? "check" : "";
  const chips = r.digits.map((d) => {
    const li = document.createElement("li");
    li.className = toCheck(d) ? "check" : "";
    li.title = toCheck(d) ? "check this one" : "";
    li.innerHTML = `<b>${d.digit ?? "?"}</b><small>${toCheck(d) ? "check" : percent(d.confidence)}</small>`;
    return li;
  });
  $("chips").replaceChildren(...chips);
  // Boxes come in the sent image's pixels: the pad's, or the upload's as it sits on the pad.
  const v = sentView || { k: 1, x: 0, y: 0 };
  $("boxes").replaceChildren(...r.digits.map((d) => {
    const [x, y, w, h] = d.box, div = document.createElement("div");
    div.style.left = `${(100 * (v.x + x * v.k)) / pad.width}%`;
    div.style.top = `${(100 * (v.y + y * v.k)) / pad.height}%`;
    div.style.width = `${(100 * w * v.k) / pad.width}%`;
    div.style.height = `${(100 * h * v.k) / pad.height}%`;
    div.className = toCheck(d) ? "check" : "";
    div.innerHTML = `<span>${d.digit ?? "?"}</span>`;
    return div;
  }));
}

function showEmpty() {
  showAnswer("?", MODES[mode].waiting);
  document.body.dataset.doubt = "";
  seenEl.removeAttribute("src");
  for (const b of bars) { b.fill.style.width = "0"; b.p.textContent = "0%"; b.li.classList.remove("top"); }
  $("chips").replaceChildren();
  $("boxes").replaceChildren();
  settle();
}

function showError(message) {
  showEmpty();
  confEl.textContent = "Could not read that";
  errorEl.textContent = message;
  errorEl.hidden = false;
}

// ---------- connection ----------
// Poll /healthz: slowly while online, quickly (backing off) while the server is away. When it
// comes back, the drawing that was waiting is sent again; nothing the user drew is lost.
let retryMs = 500;
let servedModel = null;  // the model /healthz names: another one (POST /v1/reload) reloads the card

function setOnline(up) {
  const was = online;
  online = up;
  statusEl.dataset.state = up ? "online" : "offline";
  statusText.textContent = up ? "Connected" : "Reconnecting…";
  if (up && !was) {
    retryMs = 500;
    loadModelCard();
    if (job) schedule(job, true);
  }
}

async function checkHealth() {
  try {
    const res = await fetchWithTimeout("/healthz");
    setOnline(res.ok);
    const name = res.ok ? (await res.json().catch(() => ({}))).model : undefined;
    if (name !== undefined && servedModel !== null && name !== servedModel) loadModelCard();
    if (name !== undefined) servedModel = name;
  } catch (err) {
    setOnline(false);
  }
  const next = online ? 5000 : retryMs;
  if (!online) retryMs = Math.min(retryMs * 2, 4000);
  setTimeout(checkHealth, next);
}

async function loadModelCard() {
  try {
    const card = await (await fetchWithTimeout("/v1/model")).json();
    if (typeof card.min_confidence === "number") minConfidence = card.min_confidence;
    const acc = card.test_accuracy ?? card.accuracy;
    $("model").textContent = `model: ${card.name || "unnamed"}` +
      (typeof acc === "number" ? ` · ${(acc <= 1 ? acc * 100 : acc).toFixed(2)}% on MNIST test` : "");
  } catch (err) { /* the footer keeps its last text */ }
}

setMode("digit");
checkHealth();
