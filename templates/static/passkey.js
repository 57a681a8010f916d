// Custos passkeys: the browser half of the WebAuthn ceremonies. Buttons carry data-passkey
// ("register", "second-factor" or "sign-in"), data-options and data-finish (JSON endpoints) and
// data-csrf (sent as X-CSRF-Token). Served as a file: the CSP allows no inline script.
(function () {
  "use strict";

  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u.buffer;
  }

  function toB64u(buf) {
    var u = new Uint8Array(buf), s = "";
    for (var i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function call(url, csrf, body) {
    var r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    });
    var j = {};
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error(j.error_description || "The passkey could not be used.");
    return j;
  }

  function creationOptions(o) {
    var p = o.publicKey;
    p.challenge = toBuf(p.challenge);
    p.user.id = toBuf(p.user.id);
    (p.excludeCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return { publicKey: p };
  }

  function requestOptions(o) {
    var p = o.publicKey;
    p.challenge = toBuf(p.challenge);
    (p.allowCredentials || []).forEach(function (c) { c.id = toBuf(c.id); });
    return { publicKey: p };
  }

  function created(c) {
    return {
      id: c.id, rawId: toB64u(c.rawId), type: c.type,
      response: {
        attestationObject: toB64u(c.response.attestationObject),
        clientDataJSON: toB64u(c.response.clientDataJSON),
        transports: c.response.getTransports ? c.response.getTransports() : undefined
      },
      extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
  }

  function asserted(c) {
    return {
      id: c.id, rawId: toB64u(c.rawId), type: c.type,
      response: {
        authenticatorData: toB64u(c.response.authenticatorData),
        clientDataJSON: toB64u(c.response.clientDataJSON),
        signature: toB64u(c.response.signature),
        userHandle: c.response.userHandle ? toB64u(c.response.userHandle) : null
      },
      extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
  }

  function showError(msg) {
    var el = document.getElementById("passkey-error");
    if (el) { el.textContent = msg; el.hidden = false; }
  }

  async function run(btn) {
    var d = btn.dataset, csrf = d.csrf;
    if (d.passkey === "register") {
      var nameEl = document.getElementById(d.name);
      var name = nameEl ? nameEl.value.trim() : "";
      if (!name) throw new Error("Give the passkey a name first.");
      var c = await navigator.credentials.create(creationOptions(await call(d.options, csrf)));
      await call(d.finish, csrf, { name: name, credential: created(c) });
      window.location.assign(d.done);
      return;
    }
    var next = {};
    if (d.passkey === "sign-in") {
      var remember = document.getElementById("remember_me");
      next = { req: d.req || "", remember_me: !!(remember && remember.checked) };
      if (d.returnTo) next.return_to = d.returnTo;
    }
    var a = await navigator.credentials.get(requestOptions(await call(d.options, csrf, next)));
    var body = d.passkey === "sign-in" ? Object.assign({ credential: asserted(a) }, next) : asserted(a);
    var done = await call(d.finish, csrf, body);
    window.location.assign(done.redirect);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-passkey]").forEach(function (btn) {
      if (!window.PublicKeyCredential) { btn.hidden = true; return; }
      btn.addEventListener("click", function () {
        btn.disabled = true;
        run(btn).catch(function (e) {
          showError(e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : (e.message || String(e)));
        }).finally(function () { btn.disabled = false; });
      });
    });
  });
})();
