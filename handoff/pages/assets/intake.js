"use strict";
// The intake page: check the public key keyhole serves against the
// fingerprint in the link before encrypting anything; seal the value to
// it as handoff.OpenAnswer opens (ECDH P-256, HKDF-SHA-256 with no salt
// and info IntakeInfo, AES-256-GCM, the intake's id as associated data);
// send it with the link's capability and the hosts the human allows.
(() => {
  const INTAKE_INFO = "keyhole intake v1"; // handoff.IntakeInfo
  const CAPABILITY_BYTES = 32; // handoff.CapabilityBytes
  const P256 = { name: "ECDH", namedCurve: "P-256" };

  if (document.body.dataset.state !== "pending") return;
  const id = keyhole.id();
  const maxBytes = Number(document.body.dataset.maxBytes);
  const [capability, fingerprint] = keyhole.takeFragment().split(".");
  const form = document.getElementById("answer");
  const input = document.getElementById("secret");
  const send = document.getElementById("send");
  const decline = document.getElementById("decline");
  const problem = document.getElementById("problem");
  let publicKey = null;

  // ended shows how a request that is no longer pending ended.
  function ended(r) {
    if (r.status === 404) return keyhole.show("not_found");
    if (r.status === 403) return keyhole.show("damaged");
    if ((r.status === 410 || r.status === 200) && r.body && r.body.status) return keyhole.show(r.body.status);
    keyhole.show("error");
  }

  async function check() {
    if (capability === "" || fingerprint === undefined) return keyhole.show("nokey");
    const fp = keyhole.decode(fingerprint, 32);
    if (keyhole.decode(capability, CAPABILITY_BYTES) === null || fp === null) return keyhole.show("damaged");
    const r = await keyhole.api("GET", id + "/meta");
    if (r.status !== 200 || !r.body || r.body.status !== "pending") return ended(r);
    const pub = keyhole.decode(r.body.public_key, 65);
    if (pub === null || !keyhole.equal(await keyhole.sha256(pub), fp)) return keyhole.show("damaged");
    try {
      publicKey = await crypto.subtle.importKey("raw", pub, P256, false, []);
    } catch (e) {
      return keyhole.show("damaged");
    }
    send.disabled = false;
    decline.disabled = false;
  }

  async function seal(value) {
    const eph = await crypto.subtle.generateKey(P256, true, ["deriveBits"]);
    const shared = await crypto.subtle.deriveBits({ name: "ECDH", public: publicKey }, eph.privateKey, 256);
    const hkdf = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
    const aes = await crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: keyhole.enc.encode(INTAKE_INFO) },
      hkdf,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt"],
    );
    const nonce = crypto.getRandomValues(new Uint8Array(keyhole.nonceBytes));
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: keyhole.enc.encode(id) }, aes, value);
    return {
      ephemeral_key: keyhole.encode(await crypto.subtle.exportKey("raw", eph.publicKey)),
      nonce: keyhole.encode(nonce),
      ciphertext: keyhole.encode(ct),
    };
  }

  async function answer(ev) {
    ev.preventDefault();
    problem.textContent = "";
    const hosts = [...form.querySelectorAll("input[name=host]:checked")].map((h) => h.value);
    const value = keyhole.enc.encode(input.value);
    if (value.length === 0) return (problem.textContent = "Enter the secret first.");
    if (value.length > maxBytes) {
      value.fill(0);
      return (problem.textContent = "The secret is " + value.length + " bytes; keyhole takes at most " + maxBytes + ".");
    }
    if (hosts.length === 0) return (problem.textContent = "Keep at least one host ticked, or decline.");
    send.disabled = decline.disabled = true;
    let sealed;
    try {
      sealed = await seal(value);
    } catch (e) {
      send.disabled = decline.disabled = false;
      return (problem.textContent = "This browser could not encrypt the secret.");
    } finally {
      value.fill(0);
    }
    const r = await keyhole.api("POST", id + "/answer", { capability, hosts, ...sealed });
    if (r.status === 204) {
      input.value = "";
      return keyhole.show("sent");
    }
    if (r.status === 400 || r.status === 413) {
      send.disabled = decline.disabled = false;
      return (problem.textContent = (r.body && r.body.message) || "keyhole refused the answer.");
    }
    input.value = "";
    ended(r);
  }

  async function refuse() {
    send.disabled = decline.disabled = true;
    const r = await keyhole.api("POST", id + "/decline", { capability });
    input.value = "";
    if (r.status === 204) return keyhole.show("declined");
    ended(r);
  }

  form.addEventListener("submit", answer);
  decline.addEventListener("click", refuse);
  check();
})();
