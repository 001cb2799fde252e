"use strict";
// The share page: check the link's key against the share's key check
// before anything is claimed; claim one view only on a click on Reveal;
// decrypt in this browser (AES-256-GCM, the share's id as associated
// data, as handoff.SealShare seals). The value goes nowhere but the page.
(() => {
  const KEY_CHECK_LABEL = "keyhole share key check v1"; // handoff.KeyCheckLabel
  const KEY_BYTES = 32; // handoff.KeyBytes

  if (document.body.dataset.state !== "ready") return;
  const id = keyhole.id();
  const fragment = keyhole.takeFragment();
  const reveal = document.getElementById("reveal");
  let key = null;

  // gone shows what a 404 or 410 (or anything else) says.
  function gone(r) {
    if (r.status === 404) return keyhole.show("not_found");
    if ((r.status === 410 || r.status === 200) && r.body && r.body.status) return keyhole.show(r.body.status);
    keyhole.show("error");
  }

  async function check() {
    if (fragment === "") return keyhole.show("nokey");
    key = keyhole.decode(fragment, KEY_BYTES);
    if (key === null) return keyhole.show("damaged");
    const r = await keyhole.api("GET", id + "/meta");
    if (r.status !== 200 || !r.body || r.body.status !== "ready") return gone(r);
    const want = keyhole.decode(r.body.key_check, 32);
    const got = await keyhole.sha256(keyhole.enc.encode(KEY_CHECK_LABEL), key);
    if (!keyhole.equal(got, want)) {
      key = null;
      return keyhole.show("damaged");
    }
    reveal.disabled = false;
  }

  async function open() {
    reveal.disabled = true;
    const r = await keyhole.api("POST", id + "/reveal");
    if (r.status !== 200 || !r.body) return gone(r);
    let plain;
    try {
      const sealed = keyhole.decode(r.body.ciphertext, 0);
      if (sealed === null) throw new Error("not base64url");
      const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
      plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: sealed.subarray(0, keyhole.nonceBytes), additionalData: keyhole.enc.encode(id) },
        k,
        sealed.subarray(keyhole.nonceBytes),
      );
    } catch (e) {
      return keyhole.show("damaged");
    } finally {
      key.fill(0);
    }
    document.getElementById("value").textContent = new TextDecoder().decode(plain);
    if (r.body.views_left > 0) {
      document.getElementById("views-left").textContent =
        "this link can show it " + r.body.views_left + " more time" + (r.body.views_left > 1 ? "s" : "");
    }
    keyhole.show("value");
  }

  async function copy() {
    const value = document.getElementById("value");
    const said = document.getElementById("copied");
    try {
      await navigator.clipboard.writeText(value.textContent);
      said.textContent = "Copied.";
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents(value);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      said.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
    }
  }

  reveal.addEventListener("click", open);
  document.getElementById("copy").addEventListener("click", copy);
  check();
})();
