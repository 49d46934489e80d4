// Corrections, when the server was started with `--collect DIR` (GET /v1/corrections answers 200;
// without it, 404 and nothing here shows): "Wrong? It's a _" under a digit, "correct this number"
// under a reading. The image sent is the one that was read: the pad as drawn (PNG), or the uploaded
// file itself. Kept apart from app.js: it only watches the page's state (body data-busy, data-mode,
// data-answer, the pad's "inked" class) and reads the pad, or app.js's padUpload.
"use strict";
(() => {
  const form = $("correct"), ask = $("correct-ask"), digits = $("correct-digits");
  const numberInput = $("correct-number"), done = $("correct-done");
  let collecting = false;

  for (let d = 0; d < 10; d++) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn";
    b.textContent = String(d);
    b.dataset.digit = String(d);
    b.addEventListener("click", () => send(String(d)));
    digits.appendChild(b);
  }

  function ready() {
    return collecting && padWrap.classList.contains("inked") && document.body.dataset.busy === "0";
  }

  function update() {
    const number = document.body.dataset.mode === "number";
    ask.textContent = number ? "Wrong? Correct this number:" : "Wrong? It's a";
    form.hidden = !ready();
  }

  function fresh() {  // a new drawing, upload, mode or answer: the last correction's message goes
    done.textContent = "";
    form.dataset.state = "";
    numberInput.value = (document.body.dataset.answer || "").replace(/[^0-9]/g, "");
  }

  new MutationObserver((changes) => {
    if (changes.some((c) => c.attributeName === "data-answer" || c.attributeName === "data-mode")) fresh();
    update();
  }).observe(document.body, { attributes: true, attributeFilter: ["data-busy", "data-mode", "data-answer"] });
  new MutationObserver(update).observe(padWrap, { attributes: true, attributeFilter: ["class"] });

  numberInput.addEventListener("input", () => {  // editing the number again: another save is meant
    if (form.dataset.state !== "saving") { form.dataset.state = ""; done.textContent = ""; }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(numberInput.value.trim());
  });

  async function send(label) {
    // One correction per answer: a second click would save the same drawing under another label.
    if (form.dataset.state === "saving" || form.dataset.state === "saved") return;
    const kind = document.body.dataset.mode === "number" ? "number" : "digit";
    form.dataset.state = "saving";
    done.textContent = "Saving…";
    try {
      const predicted = document.body.dataset.answer || null;
      const upload = padUpload;  // the uploaded file now on the pad, or null when a drawing was read
      let request;
      if (upload) {  // the file itself, as it was sent to be read: base64 would not fit a large photo
        const form = new FormData();
        form.append("file", upload, upload.name || "photo");
        for (const [name, value] of Object.entries({ label, kind, predicted })) if (value !== null) form.append(name, value);
        request = { body: form };
      } else {
        request = {
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ image: pad.toDataURL("image/png"), label, kind, predicted }),
        };
      }
      const res = await fetch("/v1/corrections", { method: "POST", ...request, cache: "no-store" });
      const answer = await res.json();
      if (!res.ok) throw new Error(answer.detail || `not saved (${res.status})`);
      form.dataset.state = "saved";
      done.textContent = `Saved as ${answer.label}. Thank you: digitrec finetune learns from it.`;
    } catch (err) {
      form.dataset.state = "error";
      done.textContent = `Not saved: ${err.message}`;
    }
  }

  (async () => {
    try {
      collecting = (await fetch("/v1/corrections", { cache: "no-store" })).ok;
    } catch (err) { /* the server is away: no corrections until the page is opened again */ }
    update();
  })();
})();
