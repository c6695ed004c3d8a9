// Passkeys (WebAuthn): a button marked data-passkey="login", "step_up" or "enrol" asks the
// server for options, lets the browser (the phone's own unlock) answer, and submits its form
// with that answer in the hidden "credential" field. Without WebAuthn the button stays hidden.
"use strict";

async function passkeyAnswer(form, purpose) {
  const body = new URLSearchParams({ csrf_token: form.elements.csrf_token.value, purpose });
  const response = await fetch("/passkeys/options", { method: "POST", body, credentials: "same-origin" });
  if (!response.ok) throw new Error("options refused: " + response.status);
  const options = await response.json();
  const credential = purpose === "enrol"
    ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
    : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  return JSON.stringify(credential.toJSON());
}

for (const button of document.querySelectorAll("button[data-passkey]")) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) continue;
  const form = button.form;
  const failed = form.parentElement.querySelector("[data-passkey-error]");
  button.hidden = false;
  const help = document.getElementById(button.getAttribute("aria-describedby") || "");
  if (help) help.hidden = false;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (button.dataset.passkey === "enrol" && !form.reportValidity()) return;
    try {
      form.elements.credential.value = await passkeyAnswer(form, button.dataset.passkey);
    } catch (error) {
      if (failed) failed.hidden = false;
      return;
    }
    form.submit();
  });
}
