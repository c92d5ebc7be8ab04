"""Fidelity of Kurir's Graph mail emulator, measured with a third-party client: python-o365.

python-o365 is used as it ships. It is pointed at the emulator only by subclassing its protocol
class (the Graph base URL) and its connection class (the authority, and MSAL's instance
discovery, which would ask login.microsoftonline.com about a host it does not know); its CA
comes from REQUESTS_CA_BUNDLE, set by the `emulator` fixture. Every call below is what an
administrator's script would make against Microsoft Graph.
"""

import base64
import uuid

import pytest
from msal import ConfidentialClientApplication
from O365 import Account
from O365.connection import Connection, MSGraphProtocol

from test_msgraph import mailbox, ops, seed


def account_for(emulator, resource):
    """A python-o365 Account with the client-credentials flow against the emulator."""

    class EmulatorProtocol(MSGraphProtocol):
        _protocol_url = emulator["base_url"] + "/"

    class EmulatorConnection(Connection):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._msal_authority = emulator["authority"]

        @property
        def msal_client(self):
            if self._msal_client is None:
                self._msal_client = ConfidentialClientApplication(
                    client_id=self.auth[0], client_credential=self.auth[1],
                    authority=self._msal_authority, token_cache=self.token_backend,
                    validate_authority=False, instance_discovery=False)
            return self._msal_client

    class EmulatorAccount(Account):
        connection_constructor = EmulatorConnection

    account = EmulatorAccount(
        (emulator["client_id"], emulator["client_secret"]), auth_flow_type="credentials",
        tenant_id=emulator["tenant_id"], protocol=EmulatorProtocol(default_resource=resource),
        main_resource=resource)
    assert account.authenticate(), "client-credentials sign-in against the emulator"
    return account


def seed_with_attachment(emulator, address, subject, data):
    raw = (
        f"From: Order System <orders@example.com>\r\nTo: {address}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4()}@example.com>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
        f"Content-Type: text/plain\r\n\r\nOrder attached.\r\n--b1\r\n"
        f"Content-Type: application/pdf; name=\"order.pdf\"\r\n"
        f"Content-Disposition: attachment; filename=\"order.pdf\"\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(data).decode()}\r\n--b1--\r\n"
    ).encode()
    return ops(emulator, "POST", f"/_emulator/mailboxes/{address}/messages?folder=inbox",
               data=raw, content_type="message/rfc822")["id"]


def subjects(messages):
    return [m.subject for m in messages]


def test_o365_lists_pages_filters_and_reads_attachments(emulator, tmp_path):
    box = mailbox(emulator, "megan.bowen")
    tag = uuid.uuid4().hex[:6]
    for i in range(7):
        seed(emulator, box, f"o365 {tag} {i}")
    pdf = bytes(range(256)) * 40
    seed_with_attachment(emulator, box, f"o365 {tag} with file", pdf)

    inbox = account_for(emulator, box).mailbox().inbox_folder()
    # Paged: python-o365 follows @odata.nextLink in batches of 3.
    query = inbox.new_query().equals("isRead", False)
    got = list(inbox.get_messages(limit=50, batch=3, query=query))
    mine = [m for m in got if m.subject and m.subject.startswith(f"o365 {tag}")]
    assert len(mine) == 8, subjects(got)

    message = next(m for m in mine if m.subject.endswith("with file"))
    assert message.has_attachments
    assert message.attachments.download_attachments()
    assert [a.name for a in message.attachments] == ["order.pdf"]
    assert message.attachments[0].save(location=str(tmp_path))
    assert (tmp_path / "order.pdf").read_bytes() == pdf


def test_o365_moves_copies_flags_categorises_replies_and_deletes(emulator):
    box = mailbox(emulator, "megan.bowen")
    tag = uuid.uuid4().hex[:6]
    seed(emulator, box, f"o365 {tag} keep")
    account = account_for(emulator, box)
    mb = account.mailbox()
    inbox = mb.inbox_folder()
    archive = mb.archive_folder()

    def find(folder, subject):
        return [m for m in folder.get_messages(limit=100) if m.subject == subject]

    [message] = find(inbox, f"o365 {tag} keep")
    # Flag and categorise, then read back from the server.
    message.flag.set_flagged()
    message.categories = ["Kurir test"]
    assert message.save_message()
    [again] = find(inbox, f"o365 {tag} keep")
    assert again.flag.is_flagged
    assert again.categories == ["Kurir test"]

    copied = message.copy(archive)
    assert copied and copied.object_id != message.object_id
    assert len(find(archive, f"o365 {tag} keep")) == 1
    assert len(find(inbox, f"o365 {tag} keep")) == 1

    # Reply: python-o365 makes a draft with createReply, fills it in, and sends it.
    reply = message.reply()
    reply.body = "Thank you."
    assert reply.send()
    sent = [m for m in mb.sent_folder().get_messages(limit=100)
            if m.subject == f"RE: o365 {tag} keep"]
    assert len(sent) == 1

    assert message.move(archive)
    assert len(find(archive, f"o365 {tag} keep")) == 2
    [moved] = [m for m in find(archive, f"o365 {tag} keep") if m.object_id != copied.object_id]
    assert moved.delete()
    assert len(find(mb.deleted_folder(), f"o365 {tag} keep")) == 1, "in Deleted Items"


def test_o365_sends_a_5_mb_attachment_through_its_draft_and_upload_session(emulator, tmp_path):
    sender = mailbox(emulator, "megan.bowen")
    to = mailbox(emulator, "m2m")
    tag = uuid.uuid4().hex[:6]
    big = tmp_path / "drawing.bin"
    data = bytes((i * 7) % 251 for i in range(5 * 1024 * 1024))
    big.write_bytes(data)
    before = ops(emulator, "GET", "/_emulator/graph/counters")

    message = account_for(emulator, sender).mailbox().new_message()
    message.to.add(to)
    message.subject = f"o365 {tag} big"
    message.body = "Drawing attached."
    # python-o365's large-attachment path: the draft first (POST …/mailFolders/Drafts/messages),
    # then the file, which saving the draft again uploads through an upload session, then send.
    # (Posting the file inline, in sendMail or the draft, is over Graph's 4 MB: 413, as the
    # emulator answers too.)
    assert message.save_draft()
    message.attachments.add(str(big))
    assert message.save_draft()
    assert message.send()

    after = ops(emulator, "GET", "/_emulator/graph/counters")
    assert after["upload_sessions"] == before["upload_sessions"] + 1
    inbox = ops(emulator, "GET", f"/_emulator/mailboxes/{to}/messages?folder=inbox")
    got = [m for m in inbox["messages"] if m["subject"] == f"o365 {tag} big"]
    assert len(got) == 1
    assert got[0]["size"] > len(data), got[0]


if __name__ == "__main__":
    pytest.main([__file__, "-v"])
