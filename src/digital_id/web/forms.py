"""The pages' forms: one model each, which both documents the form in the OpenAPI document
and reads it; and the raw fields, repeated names kept, for requests authlib reads itself.

A form is read field by field, each field's first value as posted ("" when absent), and
never refused for its content: the patterns document what a valid value looks like, but a
page answers a malformed NIK or PIN as it answers a wrong one (a failed login, counted), so
that the answer says nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from digital_id.web.apidoc import LogoutRequest

FormPairs = list[tuple[str, str]]


async def form_pairs(request: Request) -> FormPairs:
    """Every field of an urlencoded or multipart form, repeated names kept."""
    form = await request.form()
    return [(name, value) for name, value in form.multi_items() if isinstance(value, str)]


Form = Annotated[FormPairs, Depends(form_pairs)]


def field_value(pairs: FormPairs, name: str) -> str:
    """The first value of a form field, or an empty string."""
    return next((value for key, value in pairs if key == name), "")


Model = TypeVar("Model", bound=BaseModel)


def read(model: type[Model], pairs: FormPairs) -> Model:
    """The form as ``model`` documents it: each of its fields, first value as posted."""
    fields: dict[str, Any] = {name: field_value(pairs, name) for name in model.model_fields}
    return model.model_construct(**fields)


def _posted(model: type[Model]) -> Callable[[Request], Awaitable[Model]]:
    async def posted(request: Request) -> Model:
        return read(model, await form_pairs(request))

    return posted


def _nik() -> Any:
    return Field(pattern=r"^[0-9]{16}$", description="The citizen's 16-digit NIK.")


def _pin() -> Any:
    return Field(pattern=r"^[0-9]{6}$", description="Six digits.")


def _otp() -> Any:
    return Field(pattern=r"^[0-9]{6}$", description="The authenticator's current six digits.")


def _credential() -> Any:
    return Field(
        default="",
        description="A passkey's answer (WebAuthn PublicKeyCredential.toJSON()), in place of the PIN or the one-time code.",
    )


def _csrf() -> Any:
    return Field(description="The token in the page the form came from (bound to the browser).")


def _carried() -> Any:
    return Field(
        description="The authorization request the page carried, urlencoded (opaque to the browser)."
    )


# No docstrings on the form models: a docstring would become the schema's description.


class CsrfForm(BaseModel):
    csrf_token: str = _csrf()


class _FlowForm(CsrfForm):
    # A form inside the authorization flow carries the request it answers.
    authorization_request: str = _carried()


class LoginForm(_FlowForm):
    nik: str = _nik()
    pin: str = _pin()
    credential: str = _credential()


def _acting_for() -> Any:
    return Field(
        default="",
        max_length=64,
        description="For whom the guardian goes on: `self`, or the chosen child's pairwise "
        "`sub` at the agency (as the page offered it).",
    )


class ConsentForm(_FlowForm):
    login_proof: str = Field(default="", description="Proof that the login just happened.")
    decision: str = Field(examples=["approve", "deny"])
    acting_for: str = _acting_for()


class ActingForm(_FlowForm):
    login_proof: str = Field(default="", description="Proof that the login just happened.")
    acting_for: str = _acting_for()


class SecondFactorForm(_FlowForm):
    otp: str = _otp()
    credential: str = _credential()


class UserCodeForm(CsrfForm):
    user_code: str = Field(
        pattern=r"^[BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz\- ]{8,12}$",
        description="The code the kiosk shows (RFC 8628); case, spaces and dashes do not matter.",
    )


class PasskeyOptionsForm(CsrfForm):
    purpose: str = Field(
        examples=["login", "step_up", "enrol"],
        description="`login` (no session, or a new one), `step_up` (this session's citizen), or `enrol` (the portal).",
    )


class PasskeyEnrolForm(CsrfForm):
    name: str = Field(
        max_length=64, description="The citizen's name for the passkey, e.g. `Ponsel saya`."
    )
    credential: str = Field(
        description="The new credential (WebAuthn PublicKeyCredential.toJSON())."
    )


class PasskeyRemoveForm(CsrfForm):
    passkey: str = Field(pattern=r"^[0-9]{1,18}$", description="Which passkey, by its number.")


class ActivationForm(CsrfForm):
    nik: str = _nik()
    code: str = Field(description="The activation code sent to the citizen.")
    pin: str = _pin()
    pin_confirm: str = _pin()


class LogoutForm(LogoutRequest):
    """The same, or (with ``csrf_token``) the citizen's confirmation on the logout page."""

    csrf_token: str = ""


class PortalLoginForm(CsrfForm):
    nik: str = _nik()
    pin: str = _pin()
    credential: str = _credential()


class PortalOtpForm(CsrfForm):
    otp: str = _otp()
    credential: str = _credential()


class EndSessionsForm(CsrfForm):
    sid: str = Field(description="The session to end, or `*` for all of them.")


class PinChangeForm(CsrfForm):
    old_pin: str = _pin()
    pin: str = _pin()
    pin_confirm: str = _pin()


# What a route takes to read its form through the form's model.
PostedLogin = Annotated[LoginForm, Depends(_posted(LoginForm))]
PostedConsent = Annotated[ConsentForm, Depends(_posted(ConsentForm))]
PostedActing = Annotated[ActingForm, Depends(_posted(ActingForm))]
PostedSecondFactor = Annotated[SecondFactorForm, Depends(_posted(SecondFactorForm))]
PostedUserCode = Annotated[UserCodeForm, Depends(_posted(UserCodeForm))]
PostedPasskeyOptions = Annotated[PasskeyOptionsForm, Depends(_posted(PasskeyOptionsForm))]
PostedPasskeyEnrol = Annotated[PasskeyEnrolForm, Depends(_posted(PasskeyEnrolForm))]
PostedPasskeyRemove = Annotated[PasskeyRemoveForm, Depends(_posted(PasskeyRemoveForm))]
PostedActivation = Annotated[ActivationForm, Depends(_posted(ActivationForm))]
PostedLogout = Annotated[LogoutForm, Depends(_posted(LogoutForm))]
PostedPortalLogin = Annotated[PortalLoginForm, Depends(_posted(PortalLoginForm))]
PostedPortalOtp = Annotated[PortalOtpForm, Depends(_posted(PortalOtpForm))]
PostedCsrf = Annotated[CsrfForm, Depends(_posted(CsrfForm))]
PostedEndSessions = Annotated[EndSessionsForm, Depends(_posted(EndSessionsForm))]
PostedPinChange = Annotated[PinChangeForm, Depends(_posted(PinChangeForm))]
