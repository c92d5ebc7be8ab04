"""Fidelity of Kurir's Entra ID emulator, measured with Microsoft's own MSAL for Python.

MSAL is used unmodified: if it acquires tokens from the emulator with the same calls a real
tenant needs (secret, certificate with and without x5c, ROPC, device code, silent refresh) and
gets the same error dicts back, the emulator speaks Entra ID well enough for Kurir's tests to
mean something. The returned JWTs are verified against the emulator's published signing keys
and their claims checked against Microsoft's v1.0 access token format.
"""

import os
import threading
import time
from pathlib import Path

import jwt
import msal
import pytest

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
EXO_APP_DEFAULT = "https://outlook.office365.com/.default"
EXO_USER_SCOPES = [
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
]
# Names of the built-in demo fixture (crates/emulator/src/demo.rs).
EXPIRED_SECRET = "kUr~3X.expired_SecretValue-Qw8Er7Ty6Ui5Op4A"
SECRET_ID = "c2a4e6f8-1b3d-4f5a-8c7e-9d0b2a4c6e8f"
MFA_USER = "mfa.user@kurirdemo.onmicrosoft.com"
UNCONSENTED_CLIENT_ID = "7a9c1e3f-5b7d-4f1a-8c3e-5a7c9e1b3d5f"


def confidential(emulator, credential):
    return msal.ConfidentialClientApplication(
        emulator["client_id"], client_credential=credential,
        authority=emulator["authority"], validate_authority=False, instance_discovery=False,
        token_cache=msal.TokenCache())


def public(emulator, client_id=None):
    return msal.PublicClientApplication(
        client_id or emulator["client_id"], authority=emulator["authority"],
        validate_authority=False, instance_discovery=False, token_cache=msal.TokenCache())


def verified_claims(emulator, token, kind, audience):
    """Verifies the signature with the published PEM of the expected key and returns claims."""
    keys = emulator["signing_keys"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert header["kid"] == keys[f"{kind}_kid"] == header["x5t"]
    pem = Path(keys[f"{kind}_pub_pem_path"]).read_text()
    claims = jwt.decode(token, pem, algorithms=["RS256"], audience=audience,
                        issuer=f"https://sts.windows.net/{emulator['tenant_id']}/")
    assert claims["ver"] == "1.0"
    assert claims["tid"] == emulator["tenant_id"]
    assert claims["appid"] == emulator["client_id"] or kind == "user"
    assert claims["nbf"] <= time.time() + 5 < claims["exp"]
    return claims


def need_userrealm(emulator):
    # CI must never skip silently: without the :443 listener this fails, unless a developer who
    # cannot bind :443 (not root) opts out explicitly with KURIR_ALLOW_NO_USERREALM=1.
    if not emulator.get("userrealm_port"):
        reason = ("the emulator has no :443 user realm listener, which MSAL's ROPC needs; run the "
                  "tests as root (or grant cap_net_bind_service to the kurir binary): "
                  + emulator.get("userrealm_error", "")[-300:])
        if os.environ.get("KURIR_ALLOW_NO_USERREALM") == "1":
            pytest.skip(reason)
        pytest.fail(reason)


def test_client_secret_for_graph(emulator):
    result = confidential(emulator, emulator["client_secret"]).acquire_token_for_client(
        scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert "refresh_token" not in result
    claims = verified_claims(emulator, result["access_token"], "app", "https://graph.microsoft.com")
    assert claims["idtyp"] == "app"
    assert claims["appidacr"] == "1"
    assert {"Mail.Read", "Mail.Send"} <= set(claims["roles"])
    assert "scp" not in claims
    assert claims["oid"] == claims["sub"]


def test_client_secret_for_exchange_is_cached(emulator, emulator_ops):
    app = confidential(emulator, emulator["client_secret"])
    before = emulator_ops.counters()["token_requests"]
    first = app.acquire_token_for_client(scopes=[EXO_APP_DEFAULT])
    second = app.acquire_token_for_client(scopes=[EXO_APP_DEFAULT])
    assert first["access_token"] == second["access_token"]
    assert second["token_source"] == "cache"
    assert emulator_ops.counters()["token_requests"] == before + 1
    claims = verified_claims(emulator, first["access_token"], "app", "https://outlook.office365.com")
    assert set(claims["roles"]) >= {"IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"}


def test_certificate_thumbprint(emulator):
    cred = {"private_key": Path(emulator["private_key_path"]).read_text(),
            "thumbprint": emulator["certificate_thumbprint"]}
    result = confidential(emulator, cred).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" in result, result
    claims = verified_claims(emulator, result["access_token"], "app", "https://graph.microsoft.com")
    assert claims["appidacr"] == "2"


def test_certificate_with_public_certificate_sends_x5c(emulator):
    cred = {"private_key": Path(emulator["private_key_path"]).read_text(),
            "thumbprint": emulator["certificate_thumbprint"],
            "public_certificate": Path(emulator["certificate_path"]).read_text()}
    result = confidential(emulator, cred).acquire_token_for_client(scopes=[EXO_APP_DEFAULT])
    assert "access_token" in result, result
    claims = verified_claims(emulator, result["access_token"], "app", "https://outlook.office365.com")
    assert claims["appidacr"] == "2"


@pytest.mark.parametrize("secret,code", [
    ("not-the-secret", 7000215),
    (SECRET_ID, 7000215),          # the secret's ID pasted instead of its value
    (EXPIRED_SECRET, 7000222),
])
def test_bad_secrets_give_microsofts_error_dict(emulator, secret, code):
    result = confidential(emulator, secret).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [code]
    assert result["error_description"].startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " in result["error_description"]
    assert result["correlation_id"]  # MSAL sends client-request-id; it is echoed


def test_client_credentials_without_default_scope(emulator):
    result = confidential(emulator, emulator["client_secret"]).acquire_token_for_client(
        scopes=["https://graph.microsoft.com/Mail.Read"])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [1002012]


def test_ropc_for_exchange(emulator):
    need_userrealm(emulator)
    user = emulator["user"]
    result = public(emulator).acquire_token_by_username_password(
        user["username"], user["password"], scopes=EXO_USER_SCOPES)
    assert "access_token" in result, result
    claims = verified_claims(emulator, result["access_token"], "user", "https://outlook.office.com")
    assert claims["idtyp"] == "user"
    assert claims["upn"] == claims["unique_name"] == user["username"]
    assert set(claims["scp"].split()) == {"IMAP.AccessAsUser.All", "SMTP.Send"}
    assert claims["appidacr"] == "0"
    assert "roles" not in claims
    assert result["refresh_token"]  # MSAL adds offline_access
    assert result["id_token_claims"]["preferred_username"] == user["username"]
    assert result["id_token_claims"]["aud"] == emulator["client_id"]


@pytest.mark.parametrize("username,code,suberror", [
    (MFA_USER, 50076, "basic_action"),
    ("disabled.user@kurirdemo.onmicrosoft.com", 50057, None),
    ("nobody@kurirdemo.onmicrosoft.com", 50034, None),
])
def test_ropc_errors(emulator, username, code, suberror):
    need_userrealm(emulator)
    result = public(emulator).acquire_token_by_username_password(
        username, emulator["user"]["password"], scopes=EXO_USER_SCOPES)
    assert result["error"] == "invalid_grant", result
    assert result["error_codes"] == [code]
    assert result.get("suberror") == suberror


def test_ropc_wrong_password_and_missing_consent(emulator):
    need_userrealm(emulator)
    user = emulator["user"]
    wrong = public(emulator).acquire_token_by_username_password(
        user["username"], "wrong", scopes=EXO_USER_SCOPES)
    assert wrong["error_codes"] == [50126]
    unconsented = public(emulator, UNCONSENTED_CLIENT_ID).acquire_token_by_username_password(
        user["username"], user["password"], scopes=EXO_USER_SCOPES)
    assert unconsented["error_codes"] == [65001]
    assert unconsented["suberror"] == "consent_required"


def test_device_code_flow(emulator, emulator_ops):
    app = public(emulator)
    flow = app.initiate_device_flow(scopes=EXO_USER_SCOPES)
    assert flow["user_code"] and flow["message"].find(flow["user_code"]) > 0
    assert flow["verification_uri"] == "https://microsoft.com/devicelogin"
    approver = threading.Timer(1.0, emulator_ops.approve,
                               args=(flow["user_code"], emulator["user"]["username"]))
    approver.start()
    result = app.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result, result
    claims = verified_claims(emulator, result["access_token"], "user", "https://outlook.office.com")
    assert claims["upn"] == emulator["user"]["username"]
    assert app.get_accounts()[0]["username"] == emulator["user"]["username"]


def test_device_code_declined(emulator, emulator_ops):
    app = public(emulator)
    flow = app.initiate_device_flow(scopes=EXO_USER_SCOPES)
    emulator_ops.decline(flow["user_code"])
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined"


def test_silent_refresh_rotates_the_refresh_token(emulator, emulator_ops):
    # MSAL treats an access token with less than 5 minutes left as expired, so a 60 s
    # lifetime makes acquire_token_silent go to the token endpoint with the refresh token.
    emulator_ops.faults(token_lifetime_secs=60)
    try:
        app = public(emulator)
        flow = app.initiate_device_flow(scopes=EXO_USER_SCOPES)
        emulator_ops.approve(flow["user_code"], emulator["user"]["username"])
        first = app.acquire_token_by_device_flow(flow)
        assert first["expires_in"] == 60
        old_refresh = first["refresh_token"]
        account = app.get_accounts(username=emulator["user"]["username"])[0]
        before = emulator_ops.counters()["token_requests"]
        second = app.acquire_token_silent(EXO_USER_SCOPES, account=account)
        assert second and "access_token" in second, second
        assert second["access_token"] != first["access_token"]
        assert emulator_ops.counters()["token_requests"] == before + 1
        verified_claims(emulator, second["access_token"], "user", "https://outlook.office.com")
        # The refresh token was rotated: the old one no longer works.
        reused = app.acquire_token_by_refresh_token(old_refresh, scopes=EXO_USER_SCOPES)
        assert reused["error"] == "invalid_grant"
        assert reused["error_codes"] == [70008]
    finally:
        emulator_ops.faults(token_lifetime_secs=3599)


def test_unknown_tenant_is_refused_at_discovery(emulator):
    authority = emulator["base_url"] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ValueError):
        msal.ConfidentialClientApplication(
            emulator["client_id"], client_credential=emulator["client_secret"],
            authority=authority, validate_authority=False, instance_discovery=False)
