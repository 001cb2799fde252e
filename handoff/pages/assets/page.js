"use strict";
// keyhole's hand-off pages: what share.js and intake.js share. The
// constants and encodings are those of handoff/crypto.go and protocol.go.
const keyhole = (() => {
  const enc = new TextEncoder();

  // base64url without padding, as every binary value in links and JSON.
  function encode(bytes) {
    let s = "";
    for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // decode returns the bytes of s, or null if s is not base64url or (when
  // want > 0) not want bytes long.
  function decode(s, want) {
    if (typeof s !== "string" || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
    let bin;
    try {
      bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    } catch (e) {
      return null;
    }
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    if (want > 0 && out.length !== want) return null;
    return out;
  }

  // takeFragment returns the link's fragment and drops it from the address
  // bar and the history entry, so it is neither shown nor kept.
  function takeFragment() {
    const f = location.hash.slice(1);
    if (location.hash !== "" || location.href.endsWith("#")) {
      history.replaceState(null, "", location.pathname + location.search);
    }
    return f;
  }

  // id is the share's or intake's id: the path's last segment.
  function id() {
    return location.pathname.split("/").pop();
  }

  // show shows the section of state and hides the others.
  function show(state) {
    let found = false;
    for (const s of document.querySelectorAll("section[data-state]")) {
      s.hidden = s.dataset.state !== state;
      found = found || !s.hidden;
    }
    if (!found) return show("error");
    document.body.dataset.state = state;
  }

  // api sends a request to keyhole and returns its status and JSON body.
  async function api(method, path, body) {
    const init = { method, cache: "no-store", credentials: "omit", redirect: "error", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      const r = await fetch(path, init);
      let json = null;
      try {
        json = await r.json();
      } catch (e) {
        // 204 and non-JSON answers have no body to read
      }
      return { status: r.status, body: json };
    } catch (e) {
      return { status: 0, body: null };
    }
  }

  async function sha256(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const all = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  }

  // equal compares two byte arrays (neither is secret: constant time is
  // not needed in the browser).
  function equal(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  return { enc, encode, decode, takeFragment, id, show, api, sha256, equal, nonceBytes: 12 };
})();
