"""Records a passkey enrolment and login from Chromium's virtual authenticator (CTAP2,
internal, user verified) into chromium_passkey.json, for tests/accounts/test_passkeys.py.

    .venv/bin/python tests/accounts/data/record_chromium_passkey.py

The page is a blank one on http://localhost (WebAuthn needs a secure context and a domain);
the challenges are fixed so the test can hand them out as the server would have."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).with_name("chromium_passkey.json")
ENROL_CHALLENGE = base64.urlsafe_b64encode(b"recorded-enrolment-challenge-0001").rstrip(b"=")
LOGIN_CHALLENGE = base64.urlsafe_b64encode(b"recorded-login-challenge-00000001").rstrip(b"=")
USER_HANDLE = base64.urlsafe_b64encode(b"recorded-user-handle-000000000001").rstrip(b"=")

SCRIPT = """async ([enrolChallenge, loginChallenge, userHandle]) => {
  const created = await navigator.credentials.create({ publicKey:
    PublicKeyCredential.parseCreationOptionsFromJSON({
      rp: { id: "localhost", name: "Identitas Digital" },
      user: { id: userHandle, name: "3273********0002", displayName: "SITI RAHAYU" },
      challenge: enrolChallenge,
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: { residentKey: "required", userVerification: "required" },
      attestation: "none",
    }) });
  const asserted = await navigator.credentials.get({ publicKey:
    PublicKeyCredential.parseRequestOptionsFromJSON({
      challenge: loginChallenge, rpId: "localhost", userVerification: "required",
    }) });
  return { created: created.toJSON(), asserted: asserted.toJSON() };
}"""


class Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>recording</title>")

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), Blank)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://localhost:{server.server_address[1]}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page()
        devtools = page.context.new_cdp_session(page)
        devtools.send("WebAuthn.enable")
        devtools.send(
            "WebAuthn.addVirtualAuthenticator",
            {"options": {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
                         "hasUserVerification": True, "isUserVerified": True,
                         "automaticPresenceSimulation": True}},
        )  # fmt: skip
        page.goto(origin + "/")
        recorded = page.evaluate(
            SCRIPT, [ENROL_CHALLENGE.decode(), LOGIN_CHALLENGE.decode(), USER_HANDLE.decode()]
        )
        browser.close()
    server.shutdown()
    recorded |= {
        "origin": origin,
        "enrol_challenge": ENROL_CHALLENGE.decode(),
        "login_challenge": LOGIN_CHALLENGE.decode(),
        "user_handle": USER_HANDLE.decode(),
    }
    OUT.write_text(json.dumps(recorded, indent=2) + "\n")


if __name__ == "__main__":
    main()
