"""Fidelity of Kurir's Graph mail emulator, measured with Microsoft's own Graph SDK for Python.

msgraph-sdk and azure-identity are used unmodified, pointed at the emulator the way section 5
of the protocol digest describes: `ClientSecretCredential` with the emulator as authority (and
its CA through SSL_CERT_FILE, set by the `emulator` fixture), `GraphServiceClient` with its
request adapter's base URL set to the emulator's `/v1.0`. If the SDK's typed calls work and its
errors come back as `ODataError` with Graph's codes, the emulator speaks Graph well enough for
Kurir's own Graph client tests to mean something.

Messages are seeded through the emulator's `/_emulator/mailboxes/{address}/messages` test API.
"""

import asyncio
import json
import ssl
import urllib.request
import uuid

import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
    MessagesRequestBuilder,
)
from msgraph.generated.users.item.messages.item.move.move_post_request_body import (
    MovePostRequestBody,
)
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
    SendMailPostRequestBody,
)

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


def mailbox(emulator, local):
    """A demo mailbox (crates/emulator/src/demo.rs) in the demo tenant's domain."""
    return f"{local}@{emulator['tenant_domain']}"


def ops(emulator, method, path, data=None, content_type="application/json"):
    ctx = ssl.create_default_context(cafile=emulator["ca_path"])
    req = urllib.request.Request(emulator["base_url"] + path, data=data, method=method,
                                 headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return json.loads(r.read() or b"null")


def seed(emulator, address, subject, folder="inbox"):
    """Puts a raw RFC 822 message into a mailbox; returns (id, raw bytes)."""
    raw = (
        f"From: Order System <orders@example.com>\r\nTo: {address}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4()}@example.com>\r\nDate: Wed, 01 May 2024 08:30:00 +0000\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Order lines for {subject}\r\n"
    ).encode()
    out = ops(emulator, "POST", f"/_emulator/mailboxes/{address}/messages?folder={folder}",
              data=raw, content_type="message/rfc822")
    return out["id"], raw


def run_with_client(emulator, body):
    """Runs `body(client)` with a fresh credential and GraphServiceClient in a new loop."""

    async def main():
        cred = ClientSecretCredential(
            emulator["tenant_id"], emulator["client_id"], emulator["client_secret"],
            authority=emulator["base_url"], disable_instance_discovery=True)
        try:
            client = GraphServiceClient(credentials=cred, scopes=[GRAPH_DEFAULT])
            client.request_adapter.base_url = emulator["base_url"] + "/v1.0"
            return await body(client)
        finally:
            await cred.close()

    return asyncio.run(main())


def test_list_mail_folders(emulator):
    m2m = mailbox(emulator, "m2m")

    async def body(client):
        return await client.users.by_user_id(m2m).mail_folders.get()

    page = run_with_client(emulator, body)
    names = {f.display_name for f in page.value}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Archive"} <= names
    inbox = next(f for f in page.value if f.display_name == "Inbox")
    assert inbox.id and inbox.parent_folder_id


def test_list_messages_with_select_and_top_then_get_message_and_mime(emulator):
    user2 = mailbox(emulator, "megan.bowen")
    seeded = [seed(emulator, user2, f"SDK order {i}") for i in range(3)]

    async def body(client):
        inbox = client.users.by_user_id(user2).mail_folders.by_mail_folder_id("inbox")
        params = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            select=["subject", "from", "receivedDateTime", "isRead"], top=2)
        page = await inbox.messages.get(
            request_configuration=RequestConfiguration(query_parameters=params))
        first_id = page.value[0].id
        msg = await client.users.by_user_id(user2).messages.by_message_id(first_id).get()
        mime = await client.users.by_user_id(user2).messages.by_message_id(first_id).content.get()
        return page, msg, mime

    page, msg, mime = run_with_client(emulator, body)
    assert len(page.value) == 2
    assert page.odata_next_link, "more than $top messages: a next link"
    first = page.value[0]
    assert first.subject.startswith("SDK order")
    assert first.from_.email_address.address == "orders@example.com"
    assert first.is_read is False
    assert first.body is None, "$select left the body out"
    assert msg.id == first.id and msg.subject == first.subject
    assert msg.body.content.strip().startswith("Order lines for")
    assert msg.to_recipients[0].email_address.address == user2
    raw = dict((i, r) for i, r in seeded)[msg.id]
    assert mime == raw, "$value is the stored MIME byte for byte"


def test_create_child_folder_and_move_a_message(emulator):
    user = emulator["user"]["username"]
    msg_id, _ = seed(emulator, user, "To be filed")
    name = f"Kurir {uuid.uuid4().hex[:6]}"

    async def body(client):
        me = client.users.by_user_id(user)
        folder = await me.mail_folders.by_mail_folder_id("inbox").child_folders.post(
            MailFolder(display_name=name))
        moved = await me.messages.by_message_id(msg_id).move.post(
            MovePostRequestBody(destination_id=folder.id))
        children = await me.mail_folders.by_mail_folder_id("inbox").child_folders.get()
        duplicate = None
        try:
            await me.mail_folders.by_mail_folder_id("inbox").child_folders.post(
                MailFolder(display_name=name))
        except ODataError as e:
            duplicate = e
        in_folder = await me.mail_folders.by_mail_folder_id(folder.id).messages.get()
        return folder, moved, children, duplicate, in_folder

    folder, moved, children, duplicate, in_folder = run_with_client(emulator, body)
    assert folder.display_name == name and folder.id
    assert any(c.id == folder.id for c in children.value)
    assert moved.parent_folder_id == folder.id
    assert moved.id != msg_id, "a moved message gets a new id"
    assert [m.id for m in in_folder.value] == [moved.id]
    assert duplicate is not None and duplicate.error.code == "ErrorFolderExists"
    assert duplicate.response_status_code == 409


def test_send_mail_arrives_in_the_recipients_inbox(emulator):
    sender = emulator["user"]["username"]
    m2m = mailbox(emulator, "m2m")
    subject = f"Order confirmation {uuid.uuid4().hex[:8]}"

    async def body(client):
        request = SendMailPostRequestBody(
            message=Message(
                subject=subject,
                body=ItemBody(content_type=BodyType.Text, content="Thank you for your order."),
                to_recipients=[Recipient(email_address=EmailAddress(address=m2m))]),
            save_to_sent_items=True)
        await client.users.by_user_id(sender).send_mail.post(request)
        return await client.users.by_user_id(m2m).mail_folders.by_mail_folder_id("inbox").messages.get()

    inbox = run_with_client(emulator, body)
    got = [m for m in inbox.value if m.subject == subject]
    assert len(got) == 1
    assert got[0].from_.email_address.address == sender
    assert got[0].body.content.strip() == "Thank you for your order."
    sent = ops(emulator, "GET", f"/_emulator/mailboxes/{sender}/messages?folder=sentitems")
    assert any(m["subject"] == subject for m in sent["messages"])


def test_delta_through_the_sdk(emulator):
    user2 = mailbox(emulator, "megan.bowen")
    seed(emulator, user2, "Delta one", folder="archive")

    async def body(client):
        archive = client.users.by_user_id(user2).mail_folders.by_mail_folder_id("archive")
        return await archive.messages.delta.get()

    page = run_with_client(emulator, body)
    assert any(m.subject == "Delta one" for m in page.value)
    assert page.odata_delta_link and "deltatoken" in page.odata_delta_link


def test_mailbox_outside_the_access_policy_raises_odata_error(emulator):
    restricted = mailbox(emulator, "ceo")

    async def body(client):
        with pytest.raises(ODataError) as caught:
            await client.users.by_user_id(restricted).mail_folders.by_mail_folder_id(
                "inbox").messages.get()
        return caught.value

    err = run_with_client(emulator, body)
    assert err.response_status_code == 403
    assert err.error.code == "ErrorAccessDenied"
    assert "Access to OData is disabled" in err.error.message
    assert err.error.inner_error is not None


def test_unknown_mailbox_raises_error_invalid_user(emulator):
    async def body(client):
        with pytest.raises(ODataError) as caught:
            await client.users.by_user_id(mailbox(emulator, "nobody")).mail_folders.get()
        return caught.value

    err = run_with_client(emulator, body)
    assert err.response_status_code == 404
    assert err.error.code == "ErrorInvalidUser"
