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
