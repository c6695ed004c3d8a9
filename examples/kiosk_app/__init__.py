"""The demo kiosk: an agency's screen at a public service counter that logs citizens in with
the device authorization grant (RFC 8628), so no PIN is ever typed on it."""
