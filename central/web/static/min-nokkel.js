// Min nøkkel: the entry QR code bound to this phone, and Open buttons that answer without a page reload.
//
// The phone's key: an ECDSA P-256 key pair made with WebCrypto on first use, private half not extractable,
// kept (as CryptoKey objects) in IndexedDB. Its public half is registered with central, which binds the
// phone's tickets to it. Every 30-second time step the page signs context || step (8 bytes big-endian) with
// the private key and central answers with the QR code for that step. Steps are counted on central's clock
// (the offset is measured with every ticket), so a phone whose clock is wrong still shows a fresh code.
// Without WebCrypto or IndexedDB the page says so and the Open buttons still work (they are plain forms).
(function () {
  "use strict";

  var DB_NAME = "min-nokkel";
  var STORE = "keys";
  var RECORD = "phone";
  var RENEW_BEFORE_MS = 60 * 1000; // fetch a new ticket this long before the current one expires
  var RETRY_MS = 10 * 1000;

  // --- bytes ------------------------------------------------------------------------------------------------

  function b64url(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    var plain = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    var bytes = new Uint8Array(plain.length);
    for (var i = 0; i < plain.length; i++) bytes[i] = plain.charCodeAt(i);
    return bytes;
  }

  function proofMessage(context, step) {
    var message = new Uint8Array(context.length + 8);
    message.set(context, 0);
    new DataView(message.buffer).setBigUint64(context.length, BigInt(step), false);
    return message;
  }

  // --- the key pair in IndexedDB ------------------------------------------------------------------------------

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () { request.result.createObjectStore(STORE); };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function stored(db, mode, action) {
    return new Promise(function (resolve, reject) {
      var tx = db.transaction(STORE, mode);
      var request = action(tx.objectStore(STORE));
      tx.oncomplete = function () { resolve(request.result); };
      tx.onerror = function () { reject(tx.error); };
      tx.onabort = function () { reject(tx.error); };
    });
  }

  async function keyPair(db, fresh) {
    var pair = fresh ? null : await stored(db, "readonly", function (s) { return s.get(RECORD); });
    if (!pair) {
      pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
      await stored(db, "readwrite", function (s) { return s.put(pair, RECORD); });
    }
    return pair;
  }

  // --- talking to central -----------------------------------------------------------------------------------

  function Refused(status, body) {
    this.status = status;
    this.error = (body && body.error) || "failed";
    this.message = (body && body.message) || "";
  }

  async function call(panel, method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": panel.dataset.csrf, Accept: "application/json" },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    var response = await fetch(url, options);
    var answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (!response.ok) throw new Refused(response.status, answer);
    return answer;
  }

  async function register(panel, pair) {
    var raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return call(panel, "POST", panel.dataset.keyUrl, { public_key: b64url(raw) });
  }

  async function readyKey(panel, db) {
    var pair = await keyPair(db, false);
    try {
      await register(panel, pair);
    } catch (refused) {
      if (!(refused instanceof Refused) || refused.error !== "revoked") throw refused;
      pair = await keyPair(db, true); // the old key was withdrawn: this phone makes a new one
      await register(panel, pair);
    }
    return pair;
  }

  // --- the QR code ------------------------------------------------------------------------------------------

  function QrPanel(panel) {
    this.panel = panel;
    this.site = document.getElementById("qr-site");
    this.box = document.getElementById("qr-box");
    this.image = document.getElementById("qr-image");
    this.countdown = document.getElementById("qr-countdown");
    this.message = document.getElementById("qr-message");
    this.ticket = null;
    this.pair = null;
    this.db = null;
    this.timer = null;
  }

  QrPanel.prototype.say = function (text) {
    this.message.textContent = text;
  };

  QrPanel.prototype.hide = function () {
    this.box.hidden = true;
    this.image.removeAttribute("src");
    this.image.dataset.qrText = "";
  };

  QrPanel.prototype.serverNow = function () {
    return Date.now() + this.ticket.offset;
  };

  QrPanel.prototype.fetchTicket = async function () {
    var site = this.site.value;
    var url = this.panel.dataset.ticketUrl + "?site=" + encodeURIComponent(site);
    var before = Date.now();
    var body = await call(this.panel, "GET", url);
    var halfway = before + (Date.now() - before) / 2;
    this.ticket = {
      site: site,
      context: fromB64url(body.context),
      stepMs: body.step_seconds * 1000,
      offset: Date.parse(body.server_time) - halfway,
      expiresAt: Date.parse(body.expires_at),
    };
  };

  QrPanel.prototype.ticketUsable = function () {
    return this.ticket && this.ticket.site === this.site.value &&
      this.serverNow() < this.ticket.expiresAt - RENEW_BEFORE_MS;
  };

  QrPanel.prototype.draw = async function () {
    if (!this.ticketUsable()) await this.fetchTicket();
    var step = Math.floor(this.serverNow() / this.ticket.stepMs);
    var signature = await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" }, this.pair.privateKey, proofMessage(this.ticket.context, step));
    var body = await call(this.panel, "POST", this.panel.dataset.qrUrl,
      { step: step, signature: b64url(new Uint8Array(signature)) });
    this.image.src = body.image;
    this.image.dataset.qrText = body.text;
    this.image.dataset.step = String(step);
    this.box.hidden = false;
    this.say("");
    return step;
  };

  // One attempt at a fresh code; on a refusal that a new ticket or a new registration can mend, one more.
  QrPanel.prototype.refresh = async function () {
    clearTimeout(this.timer);
    var step;
    try {
      step = await this.draw();
    } catch (refused) {
      if (!(refused instanceof Refused) || (refused.error !== "ticket" && refused.error !== "key")) {
        return this.failed(refused);
      }
      this.ticket = null;
      try {
        if (refused.error === "key") this.pair = await readyKey(this.panel, this.db);
        step = await this.draw();
      } catch (again) {
        return this.failed(again);
      }
    }
    var next = (step + 1) * this.ticket.stepMs - this.serverNow();
    this.timer = setTimeout(this.refresh.bind(this), Math.max(next, 0) + 100);
  };

  QrPanel.prototype.failed = function (refused) {
    this.hide();
    this.say((refused instanceof Refused && refused.message) || this.panel.dataset.tFailed);
    this.timer = setTimeout(this.refresh.bind(this), RETRY_MS);
  };

  QrPanel.prototype.tick = function () {
    if (!this.ticket || this.box.hidden) return;
    var left = this.ticket.stepMs - (this.serverNow() % this.ticket.stepMs);
    var seconds = Math.max(1, Math.ceil(left / 1000));
    this.countdown.textContent = this.panel.dataset.tCountdown.replace("{seconds}", String(seconds));
  };

  QrPanel.prototype.start = async function () {
    if (!window.crypto || !crypto.subtle || !window.indexedDB || typeof BigInt === "undefined") {
      this.say(this.panel.dataset.tUnsupported);
      return;
    }
    this.say(this.panel.dataset.tLoading);
    try {
      this.db = await openDb();
      this.pair = await readyKey(this.panel, this.db);
    } catch (problem) {
      var why = problem instanceof Refused ? problem.message : "";
      this.say(why || this.panel.dataset.tUnsupported);
      return;
    }
    var self = this;
    this.site.addEventListener("change", function () { self.ticket = null; self.hide(); self.refresh(); });
    setInterval(function () { self.tick(); }, 1000);
    await this.refresh();
    this.tick();
  };

  // --- Open without a reload --------------------------------------------------------------------------------

  function enhanceOpenForms() {
    var status = document.getElementById("home-status");
    if (!status || !window.fetch) return;
    function show(text, tone) {
      status.className = "notice " + tone;
      status.textContent = text;
    }
    document.querySelectorAll("form.open-form").forEach(function (form) {
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        var button = form.querySelector("button");
        button.disabled = true;
        show(status.dataset.tOpening, "");
        try {
          var response = await fetch(form.action, {
            method: "POST",
            body: new FormData(form),
            credentials: "same-origin",
            headers: { Accept: "application/json" },
          });
          var answer = await response.json();
          show(answer.message, answer.tone);
        } catch (e) {
          show(status.dataset.tFailed, "bad");
        } finally {
          button.disabled = false;
        }
      });
    });
  }

  function main() {
    enhanceOpenForms();
    var panel = document.getElementById("qr");
    if (panel) new QrPanel(panel).start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
