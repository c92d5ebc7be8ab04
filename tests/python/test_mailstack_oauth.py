"""Kurir's real mail stack (scripts/mailstack: Dovecot + Postfix on loopback) against real OAuth 2.0
tokens from Kurir's Entra emulator, with Python's own imaplib, poplib and smtplib.

The stack stands in for Exchange Online: IMAP, POP3 and SMTP submission accept only bearer tokens
(SASL XOAUTH2 / OAUTHBEARER) that the emulator issued for an Exchange audience. These tests prove
that the tokens Kurir will present are accepted, and that the server refuses what Exchange
refuses (expired, wrong audience, bad signature, someone else's mailbox), so Kurir's own tests
against this stack mean something.

Needs root (the stack installs Debian packages on first use and runs Dovecot/Postfix with
privilege separation). The `emulator` fixture comes from tests/python/conftest.py.
"""

import base64
import email.utils
import imaplib
import json
import os
import poplib
import smtplib
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "mailstack"
HOST = "127.0.0.1"
EXCHANGE_APP_SCOPE = "https://outlook.office365.com/.default"
# Delegated Exchange scopes as Microsoft documents them (resource outlook.office.com).
EXCHANGE_USER_SCOPES = ("https://outlook.office.com/IMAP.AccessAsUser.All "
                        "https://outlook.office.com/POP.AccessAsUser.All "
                        "https://outlook.office.com/SMTP.Send offline_access")
GRAPH_APP_SCOPE = "https://graph.microsoft.com/.default"
RUN_ID = uuid.uuid4().hex[:8]


# ----------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    env: dict
    ctx: ssl.SSLContext
    started_here: bool
    start_seconds: float

    def port(self, name):
        return int(self.env[f"MAILSTACK_{name}_PORT"])


def run_script(*args, timeout=600):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def report(request, line):
    """Shows a figure in pytest's terminal output even while output is captured."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    with capman.global_and_fixture_disabled():
        tr.write_line(f"[mailstack] {line}")


@pytest.fixture(scope="module")
def mailstack(request, emulator):
    """Starts scripts/mailstack (installing Dovecot/Postfix on first use), makes it trust this
    emulator's signing keys and tenant, and stops it afterwards if this fixture started it."""
    if os.geteuid() != 0:
        pytest.fail("the mail stack needs root (apt-get install, Dovecot/Postfix privilege separation): "
                    "run the tests as root, e.g. sudo -E .venv/bin/pytest tests/python")
    was_running = run_script("status").returncode == 0
    t0 = time.monotonic()
    r = run_script("start")
    start_seconds = time.monotonic() - t0
    if r.returncode != 0:
        pytest.fail(f"scripts/mailstack start failed (exit {r.returncode}):\n{r.stderr}{r.stdout}\n"
                    "Fix the cause named above (logs under $MAILSTACK_DIR/log) and run the tests again.")
    report(request, f"'scripts/mailstack start' took {start_seconds:.1f} s "
                    f"({'already running' if was_running else 'started now'}; first start includes apt-get install)")
    r = run_script("trust", emulator["state_dir"], emulator["tenant_id"], emulator["tenant_domain"])
    if r.returncode != 0:
        pytest.fail(f"scripts/mailstack trust {emulator['state_dir']} {emulator['tenant_id']} failed:\n{r.stderr}")
    r = run_script("env")
    if r.returncode != 0:
        pytest.fail(f"scripts/mailstack env failed:\n{r.stderr}")
    env = {}
    for line in r.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'")
    ctx = ssl.create_default_context(cafile=env["MAILSTACK_CA"])  # full verification, like Kurir
    yield Stack(env=env, ctx=ctx, started_here=not was_running, start_seconds=start_seconds)
    if not was_running:
        t0 = time.monotonic()
        r = run_script("stop")
        report(request, f"'scripts/mailstack stop' took {time.monotonic() - t0:.1f} s (exit {r.returncode})")


# ----------------------------------------------------------------------------- tokens
def token_request(emulator, form):
    """POSTs to the emulator's v2.0 token endpoint as an ordinary OAuth client would."""
    url = f"{emulator['authority'].rstrip('/')}/oauth2/v2.0/token"
    ctx = ssl.create_default_context(cafile=emulator["ca_path"])
    req = urllib.request.Request(url, urllib.parse.urlencode(form).encode(),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        pytest.fail(f"token request to {url} ({form.get('grant_type')}, scope {form.get('scope')}) "
                    f"failed: HTTP {e.code} {e.read().decode(errors='replace')}")


def app_token(emulator, scope=EXCHANGE_APP_SCOPE):
    return token_request(emulator, {
        "grant_type": "client_credentials", "client_id": emulator["client_id"],
        "client_secret": emulator["client_secret"], "scope": scope})["access_token"]


def user_token(emulator, scope=EXCHANGE_USER_SCOPES):
    return token_request(emulator, {
        "grant_type": "password", "client_id": emulator["client_id"],
        "username": emulator["user"]["username"], "password": emulator["user"]["password"],
        "scope": scope})["access_token"]


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def claims(token):
    return json.loads(b64u_decode(token.split(".")[1]))


def resign_with_foreign_key(token):
    """The same header (kid of the emulator's key) and claims, signed by a key nobody trusts:
    what a forged token looks like."""
    header, payload, _ = token.split(".")
    with tempfile.TemporaryDirectory() as d:
        key = Path(d, "rogue.key")
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=f"{header}.{payload}".encode(),
                             check=True, capture_output=True).stdout
    return f"{header}.{payload}.{b64u(sig)}"


def tamper(token, **changes):
    """Claims altered after signing, the original signature kept."""
    header, payload, sig = token.split(".")
    c = json.loads(b64u_decode(payload))
    c.update(changes)
    return f"{header}.{b64u(json.dumps(c, separators=(',', ':')).encode())}.{sig}"


# ----------------------------------------------------------------------------- SASL + clients
def xoauth2(user, token):
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer(user, token, port):
    gs2_user = user.replace("=", "=3D").replace(",", "=2C")
    return f"n,a={gs2_user},\x01host=localhost\x01port={port}\x01auth=Bearer {token}\x01\x01"


def sasl(mech, user, token, port):
    return xoauth2(user, token) if mech == "XOAUTH2" else oauthbearer(user, token, port)


class OneShot:
    """SASL callback: the initial response once; an empty answer to anything after it (the
    server's JSON error challenge, RFC 7628), which makes the server send its final refusal."""

    def __init__(self, response):
        self.response, self.sent = response, False

    def __call__(self, challenge=None):
        if self.sent:
            return b""
        self.sent = True
        return self.response.encode()


def imap_login(stack, mech, user, token, starttls=False):
    if starttls:
        port = stack.port("IMAP")
        m = imaplib.IMAP4(HOST, port, timeout=15)
        m.starttls(stack.ctx)
    else:
        port = stack.port("IMAPS")
        m = imaplib.IMAP4_SSL(HOST, port, ssl_context=stack.ctx, timeout=15)
    try:
        m.authenticate(mech, OneShot(sasl(mech, user, token, port)))
    except BaseException:
        m.shutdown()
        raise
    return m


def pop3_login(stack, mech, user, token, starttls=False):
    if starttls:
        port = stack.port("POP3")
        p = poplib.POP3(HOST, port, timeout=15)
        p.stls(stack.ctx)
    else:
        port = stack.port("POP3S")
        p = poplib.POP3_SSL(HOST, port, context=stack.ctx, timeout=15)
    # poplib has no AUTH helper; this is RFC 5034 with an initial response, as Kurir sends it.
    initial = base64.b64encode(sasl(mech, user, token, port).encode()).decode()
    try:
        resp = p._shortcmd(f"AUTH {mech} {initial}")
        while not resp.startswith(b"+OK"):  # "+ <b64 JSON>" error challenge: answer empty, get the final -ERR
            resp = p._shortcmd("")
    except BaseException:
        p.close()
        raise
    return p


def smtp_login(stack, mech, user, token, implicit_tls=False):
    if implicit_tls:
        port = stack.port("SUBMISSIONS")
        s = smtplib.SMTP_SSL(HOST, port, context=stack.ctx, local_hostname="kurir.localhost", timeout=15)
    else:
        port = stack.port("SUBMISSION")
        s = smtplib.SMTP(HOST, port, local_hostname="kurir.localhost", timeout=15)
        s.starttls(context=stack.ctx)
    s.ehlo()
    try:
        once = OneShot(sasl(mech, user, token, port))
        s.auth(mech, lambda challenge=None: once(challenge).decode())  # smtplib wants str
    except BaseException:
        s.close()
        raise
    return s


def message(frm, to, subject, body="Hello from Kurir's tests.\r\n"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@kurir.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def deliver(stack, addr, data):
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(data)
        f.flush()
        r = run_script("deliver", addr, f.name, timeout=60)
    assert r.returncode == 0, f"scripts/mailstack deliver failed: {r.stderr}"


def imap_find(m, subject):
    typ, data = m.uid("SEARCH", None, "SUBJECT", f'"{subject}"')
    assert typ == "OK", data
    return data[0].split()


def wait_for_message(stack, user, token, subject, timeout=20):
    """Polls the mailbox over IMAP until a message with this subject arrived (Postfix queues
    submitted mail and hands it to Dovecot's LMTP a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        m = imap_login(stack, "XOAUTH2", user, token)
        try:
            m.select("INBOX", readonly=True)
            uids = imap_find(m, subject)
            if uids:
                typ, data = m.uid("FETCH", uids[-1], "(BODY.PEEK[])")
                return data[0][1]
        finally:
            m.logout()
        if time.monotonic() > deadline:
            pytest.fail(f"message '{subject}' did not arrive in {user}'s INBOX within {timeout} s "
                        f"(see {stack.env['MAILSTACK_LOG_DIR']}/postfix.log)")
        time.sleep(0.2)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def user(emulator):
    return emulator["user"]["username"]


@pytest.fixture(scope="module")
def other(emulator):
    """Another mailbox of the tenant: the demo user has no rights on it."""
    return f"kurir-other-{RUN_ID}@{emulator['tenant_domain']}"


@pytest.fixture(scope="module")
def tokens(emulator, mailstack):
    app = app_token(emulator)
    usr = user_token(emulator)
    return {"app": app, "user": usr}


def test_emulator_tokens_have_the_shape_the_stack_relies_on(emulator, tokens, user):
    app, usr = claims(tokens["app"]), claims(tokens["user"])
    issuer = f"https://sts.windows.net/{emulator['tenant_id']}/"
    assert app["iss"] == issuer and usr["iss"] == issuer
    assert app["aud"].rstrip("/") == "https://outlook.office365.com", app["aud"]
    assert usr["aud"].rstrip("/") in ("https://outlook.office.com", "https://outlook.office365.com"), usr["aud"]
    assert app.get("idtyp") == "app" and "IMAP.AccessAsApp" in app.get("roles", [])
    assert usr["upn"].lower() == user.lower() and "IMAP.AccessAsUser.All" in usr.get("scp", "").split()
    # Dovecot needs typ=JWT in the header and a sub claim; the kid picks the passdb.
    kids = emulator["signing_keys"]
    for tok, kid in ((tokens["app"], kids["app_kid"]), (tokens["user"], kids["user_kid"])):
        header = json.loads(b64u_decode(tok.split(".")[0]))
        assert header == {**header, "typ": "JWT", "alg": "RS256", "kid": kid}, header
        assert claims(tok).get("sub")


# ----------------------------------------------------------------------------- IMAP
@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("starttls", [False, True], ids=["imaps", "imap-starttls"])
def test_imap_user_token_opens_own_mailbox(mailstack, tokens, user, mech, starttls):
    subject = f"seeded-imap-{mech}-{starttls}-{RUN_ID}"
    deliver(mailstack, user, message("seed@example.org", user, subject))
    m = imap_login(mailstack, mech, user, tokens["user"], starttls=starttls)
    try:
        assert m.state == "AUTH"
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        uids = imap_find(m, subject)
        assert len(uids) == 1, f"seeded message not found: {uids}"
        typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
        assert subject.encode() in data[0][1]
    finally:
        m.logout()


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_imap_app_token_opens_any_mailbox(mailstack, tokens, user, other, mech):
    for mailbox in (user, other):
        subject = f"seeded-app-{mech}-{RUN_ID}"
        deliver(mailstack, mailbox, message("seed@example.org", mailbox, subject))
        m = imap_login(mailstack, mech, mailbox, tokens["app"])
        try:
            m.select("INBOX", readonly=True)
            assert imap_find(m, subject), f"app token opened {mailbox} but the seeded message is missing"
        finally:
            m.logout()


def test_imap_password_login_is_refused(mailstack, emulator, user):
    """Basic auth is off, as in Exchange Online: a correct password still does not log in."""
    m = imaplib.IMAP4_SSL(HOST, mailstack.port("IMAPS"), ssl_context=mailstack.ctx, timeout=15)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            m.login(user, emulator["user"]["password"])
    finally:
        m.shutdown()


# ----------------------------------------------------------------------------- POP3
@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("starttls", [False, True], ids=["pop3s", "pop3-stls"])
def test_pop3_user_token(mailstack, tokens, user, mech, starttls):
    subject = f"seeded-pop3-{mech}-{starttls}-{RUN_ID}"
    deliver(mailstack, user, message("seed@example.org", user, subject))
    p = pop3_login(mailstack, mech, user, tokens["user"], starttls=starttls)
    try:
        count, _ = p.stat()
        lines = p.retr(count)[1]
        assert any(subject.encode() in line for line in lines), "newest message is not the seeded one"
    finally:
        p.quit()


def test_pop3_app_token_opens_other_mailbox(mailstack, tokens, other):
    deliver(mailstack, other, message("seed@example.org", other, f"seeded-pop3-app-{RUN_ID}"))
    p = pop3_login(mailstack, "XOAUTH2", other, tokens["app"])
    try:
        assert p.stat()[0] >= 1
    finally:
        p.quit()


# ----------------------------------------------------------------------------- SMTP
@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("implicit_tls", [False, True], ids=["587-starttls", "465-tls"])
def test_smtp_user_token_sends_and_mail_arrives(mailstack, tokens, user, mech, implicit_tls):
    """Submitted with the user's token, delivered locally, read back over IMAP."""
    subject = f"smtp-{mech}-{implicit_tls}-{RUN_ID}"
    s = smtp_login(mailstack, mech, user, tokens["user"], implicit_tls=implicit_tls)
    try:
        refused = s.sendmail(user, [user], message(user, user, subject, "sent over submission\r\n"))
        assert refused == {}
    finally:
        s.quit()
    body = wait_for_message(mailstack, user, tokens["user"], subject)
    assert b"sent over submission" in body


def test_smtp_app_token_sends_as_any_mailbox(mailstack, tokens, user, other):
    subject = f"smtp-app-{RUN_ID}"
    s = smtp_login(mailstack, "XOAUTH2", other, tokens["app"])
    try:
        s.sendmail(other, [user], message(other, user, subject))
    finally:
        s.quit()
    wait_for_message(mailstack, user, tokens["user"], subject)


def test_smtp_mail_from_must_be_the_logged_in_mailbox(mailstack, tokens, user, other):
    """Like Exchange's SendAs check: a user cannot send as another mailbox."""
    s = smtp_login(mailstack, "XOAUTH2", user, tokens["user"])
    try:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail(other, [user], message(other, user, f"spoof-{RUN_ID}"))
        code, text = e.value.recipients[user]
        assert code == 553 and b"not owned by user" in text, (code, text)
    finally:
        s.close()


def test_smtp_refuses_auth_before_starttls(mailstack):
    s = smtplib.SMTP(HOST, mailstack.port("SUBMISSION"), local_hostname="kurir.localhost", timeout=15)
    try:
        s.ehlo()
        assert "auth" not in s.esmtp_features, "AUTH offered on a cleartext connection"
        assert s.has_extn("starttls")
    finally:
        s.close()


# ----------------------------------------------------------------------------- refusals
def refusal_cases(emulator, tokens, user, other):
    app, usr = tokens["app"], tokens["user"]
    stale = issued_expired_tokens(emulator)
    return {
        "expired": (user, stale["user"]),
        "app-token-expired": (other, stale["app"]),
        "expired-resigned": (user, expired(emulator, usr, "user")),
        "wrong-audience-graph": (user, graph_token(emulator)),
        "bad-signature": (user, resign_with_foreign_key(usr)),
        "tampered-claims": (user, tamper(usr, exp=int(time.time()) + 86400 * 365)),
        "user-token-other-mailbox": (other, usr),
        "user-token-upn-swapped": (other, tamper(usr, upn=other, unique_name=other)),
        "app-token-bad-signature": (other, resign_with_foreign_key(app)),
        "app-token-outside-tenant-domains": ("someone@not-a-tenant-domain.example", app),
    }


def graph_token(emulator):
    tok = app_token(emulator, GRAPH_APP_SCOPE)
    assert claims(tok)["aud"].rstrip("/") in ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")
    return tok


def resign_with_emulator_key(emulator, token, kind, **changes):
    """Changes claims and signs again with the emulator's own key for this token kind (the
    emulator keeps its private keys in its state dir, keys/{app,user}.key.pem): a genuine
    emulator signature on claims of the test's choosing."""
    key = Path(emulator["state_dir"], "keys", f"{kind}.key.pem")
    if not key.is_file():
        pytest.fail(f"{key} not found: the emulator's state dir must hold its signing keys "
                    "(keys/app.key.pem, keys/user.key.pem) for the expired-token tests")
    header, payload, _ = token.split(".")
    c = json.loads(b64u_decode(payload))
    c.update(changes)
    signed = f"{header}.{b64u(json.dumps(c, separators=(',', ':')).encode())}"
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=signed.encode(),
                         check=True, capture_output=True).stdout
    return f"{signed}.{b64u(sig)}"


def emulator_faults(emulator, body=None):
    """GET or POST the emulator's fault knobs (/_emulator/faults)."""
    url = f"{emulator['base_url'].rstrip('/')}/_emulator/faults"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=emulator["ca_path"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.URLError as e:
        pytest.fail(f"{'POST' if body else 'GET'} {url} failed: {e}; the expired-token tests need the "
                    "emulator's fault endpoint")


def issued_expired_tokens(emulator):
    """Tokens the emulator itself issued with a 1-second lifetime (its fault endpoint), used
    once they have expired: exactly what a client holding a stale token presents."""
    before = emulator_faults(emulator)["token_lifetime_secs"]
    emulator_faults(emulator, {"token_lifetime_secs": 1})
    try:
        toks = {"app": app_token(emulator), "user": user_token(emulator)}
    finally:
        emulator_faults(emulator, {"token_lifetime_secs": before})
    latest = max(claims(t)["exp"] for t in toks.values())
    assert latest - time.time() < 5, f"the emulator ignored token_lifetime_secs=1 (exp {latest})"
    while time.time() < latest + 1.1:  # Dovecot compares whole seconds
        time.sleep(0.2)
    return toks


def expired(emulator, token, kind):
    """Validly signed but an hour past its exp (nbf/iat moved back to match): only the expiry is
    wrong, so a refusal proves the server checks exp (see the positive control below)."""
    now = int(time.time())
    return resign_with_emulator_key(emulator, token, kind, iat=now - 7200, nbf=now - 7200, exp=now - 3600)


def test_resigning_with_the_emulator_key_keeps_a_token_valid(mailstack, emulator, tokens, user, other):
    """Control for the expired-token refusals: the same re-signing with a future exp logs in."""
    now = int(time.time())
    for kind, mailbox in (("user", user), ("app", other)):
        tok = resign_with_emulator_key(emulator, tokens[kind], kind, iat=now - 60, nbf=now - 60, exp=now + 600)
        imap_login(mailstack, "XOAUTH2", mailbox, tok).logout()


REFUSALS = ["expired", "app-token-expired", "expired-resigned", "wrong-audience-graph", "bad-signature", "tampered-claims", "user-token-other-mailbox",
            "user-token-upn-swapped", "app-token-bad-signature", "app-token-outside-tenant-domains"]


@pytest.fixture(scope="module")
def refusals(emulator, tokens, user, other):
    return refusal_cases(emulator, tokens, user, other)


@pytest.mark.parametrize("case", REFUSALS)
@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_imap_refuses(mailstack, refusals, case, mech):
    mailbox, token = refusals[case]
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED|AUTHENTICATE failed"):
        imap_login(mailstack, mech, mailbox, token).logout()


@pytest.mark.parametrize("case", REFUSALS)
def test_pop3_refuses(mailstack, refusals, case):
    mailbox, token = refusals[case]
    with pytest.raises(poplib.error_proto, match=r"-ERR"):
        pop3_login(mailstack, "XOAUTH2", mailbox, token).quit()


@pytest.mark.parametrize("case", REFUSALS)
def test_smtp_refuses(mailstack, refusals, case):
    mailbox, token = refusals[case]
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        smtp_login(mailstack, "XOAUTH2", mailbox, token).quit()
    assert e.value.smtp_code == 535, e.value
