"""The Entra set-up's directory calls made by Microsoft's Graph SDK for Python (msgraph-sdk,
azure-identity), unmodified, against Kurir's emulator (issue #17.4): an administrator signs in
with the device code flow (azure-identity's DeviceCodeCredential; the code is approved through
the emulator's test hook, as the admin would in a browser), registers an app, creates its
service principal, grants Mail.Send (admin consent) and adds a client secret; the app's own
token then carries exactly that role. A user without a directory role gets the SDK's ODataError
with Graph's Authorization_RequestDenied.
"""

import asyncio
import base64
import json
import ssl
import urllib.request
import uuid

import pytest
from azure.identity import DeviceCodeCredential
from azure.identity.aio import ClientSecretCredential
from msgraph import GraphServiceClient
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration

SETUP_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ADMIN_SCOPES = [
    "https://graph.microsoft.com/Application.ReadWrite.All",
    "https://graph.microsoft.com/AppRoleAssignment.ReadWrite.All",
]


def approve(emulator, user_code, username):
    ctx = ssl.create_default_context(cafile=emulator["ca_path"])
    req = urllib.request.Request(
        emulator["base_url"] + "/_emulator/devicecode/approve",
        data=json.dumps({"user_code": user_code, "username": username}).encode(),
        method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        r.read()


def admin_client(emulator, username):
    """A GraphServiceClient signed in as `username` with the device code flow (azure-identity's
    DeviceCodeCredential is synchronous only; the SDK's auth provider takes either kind)."""
    cred = DeviceCodeCredential(
        client_id=SETUP_CLIENT_ID, tenant_id=emulator["tenant_id"],
        authority=emulator["base_url"], disable_instance_discovery=True,
        prompt_callback=lambda uri, code, expires: approve(emulator, code, username))
    client = GraphServiceClient(credentials=cred, scopes=ADMIN_SCOPES)
    client.request_adapter.base_url = emulator["base_url"] + "/v1.0"
    return cred, client


def claims(jwt):
    part = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_the_sdk_registers_consents_and_adds_a_secret_and_the_token_carries_the_role(emulator):
    admin = "admin@" + emulator["tenant_domain"]
    name = f"SDK set-up {uuid.uuid4().hex[:8]}"

    async def main():
        cred, client = admin_client(emulator, admin)
        try:
            app = await client.applications.post(
                Application(display_name=name, sign_in_audience="AzureADMyOrg"))
            assert app.app_id and app.id and app.app_id != app.id
            sp = await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
            cfg = RequestConfiguration(
                query_parameters=ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
                    filter=f"appId eq '{GRAPH_APP_ID}'"))
            graph = (await client.service_principals.get(request_configuration=cfg)).value[0]
            mail_send = next(r for r in graph.app_roles if r.value == "Mail.Send")
            granted = await client.service_principals.by_service_principal_id(
                graph.id).app_role_assigned_to.post(AppRoleAssignment(
                    principal_id=uuid.UUID(sp.id), resource_id=uuid.UUID(graph.id),
                    app_role_id=mail_send.id))
            assert str(granted.principal_id) == sp.id
            secret = await client.applications.by_application_id(app.id).add_password.post(
                AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="sdk")))
            assert secret.secret_text and secret.key_id
            return app.app_id, secret.secret_text
        finally:
            cred.close()

    app_id, secret_text = asyncio.run(main())

    async def app_token():
        cred = ClientSecretCredential(emulator["tenant_id"], app_id, secret_text,
                                      authority=emulator["base_url"], disable_instance_discovery=True)
        try:
            return (await cred.get_token("https://graph.microsoft.com/.default")).token
        finally:
            await cred.close()

    assert claims(asyncio.run(app_token()))["roles"] == ["Mail.Send"]


def test_a_user_without_a_directory_role_gets_authorization_request_denied(emulator):
    user = "adele.vance@" + emulator["tenant_domain"]

    async def main():
        cred, client = admin_client(emulator, user)
        try:
            with pytest.raises(ODataError) as e:
                await client.applications.post(Application(display_name="not allowed"))
            return e.value
        finally:
            cred.close()

    err = asyncio.run(main())
    assert err.response_status_code == 403
    assert err.error.code == "Authorization_RequestDenied"
    assert err.error.message == "Insufficient privileges to complete the operation."


def new_certificate():
    """An RSA key and self-signed certificate, as `kurir setup entra` makes: (DER, PEM cert+key,
    SHA-1 thumbprint for x5t, private key)."""
    import datetime
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kurir-sdk-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    return der, pem, x5t, key


def proof(cert, object_id):
    """The proof of possession addKey/removeKey demand (aud Graph's legacy id, iss the object id)."""
    import time
    import jwt
    now = int(time.time())
    return jwt.encode({"aud": "00000002-0000-0000-c000-000000000000", "iss": object_id,
                       "nbf": now, "exp": now + 600}, cert[3], algorithm="RS256",
                      headers={"x5t": cert[2]})


def test_the_sdk_uploads_a_certificate_and_the_app_rolls_it_with_add_key_and_remove_key(emulator):
    """Kurir's certificate path through Microsoft's SDKs: the admin uploads the public part with
    PATCH keyCredentials, the app signs in with azure-identity's CertificateCredential, adds a
    second certificate with addKey (a proof signed by the first), removes the first with
    removeKey (a proof signed by the second), after which the first no longer signs in."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity.aio import CertificateCredential
    from msgraph.generated.applications.item.add_key.add_key_post_request_body import (
        AddKeyPostRequestBody,
    )
    from msgraph.generated.applications.item.remove_key.remove_key_post_request_body import (
        RemoveKeyPostRequestBody,
    )
    from msgraph.generated.models.key_credential import KeyCredential

    admin = "admin@" + emulator["tenant_domain"]
    first, second = new_certificate(), new_certificate()
    first_id = uuid.uuid4()

    def key(cert, **kw):
        return KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=cert[0],
                             display_name="sdk", **kw)

    def app_credential(app_id, cert):
        return CertificateCredential(emulator["tenant_id"], app_id, certificate_data=cert[1],
                                     authority=emulator["base_url"], disable_instance_discovery=True)

    async def setup():
        cred, client = admin_client(emulator, admin)
        try:
            app = await client.applications.post(Application(
                display_name=f"SDK cert {uuid.uuid4().hex[:8]}", sign_in_audience="AzureADMyOrg"))
            await client.service_principals.post(ServicePrincipal(app_id=app.app_id))
            await client.applications.by_application_id(app.id).patch(
                Application(key_credentials=[key(first, key_id=first_id)]))
            listed = await client.applications.by_application_id(app.id).get()
            assert [k.key_id for k in listed.key_credentials] == [first_id]
            assert listed.key_credentials[0].key is None, "the key is never returned"
            return app.id, app.app_id
        finally:
            cred.close()

    object_id, app_id = asyncio.run(setup())

    async def roll():
        cred = app_credential(app_id, first)
        try:
            client = GraphServiceClient(credentials=cred, scopes=["https://graph.microsoft.com/.default"])
            client.request_adapter.base_url = emulator["base_url"] + "/v1.0"
            items = client.applications.by_application_id(object_id)
            added = await items.add_key.post(AddKeyPostRequestBody(
                key_credential=key(second), proof=proof(first, object_id)))
            await items.remove_key.post(RemoveKeyPostRequestBody(
                key_id=first_id, proof=proof(second, object_id)))
            return added.key_id
        finally:
            await cred.close()

    asyncio.run(roll())

    async def token(cert):
        cred = app_credential(app_id, cert)
        try:
            return (await cred.get_token("https://graph.microsoft.com/.default")).token
        finally:
            await cred.close()

    assert claims(asyncio.run(token(second)))["appid"] == app_id
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        asyncio.run(token(first))
