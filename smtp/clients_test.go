package smtp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pySMTPLib drives the server with Python's smtplib: every case prints
// "ok NAME" or exits non-zero.
const pySMTPLib = `
import smtplib, ssl, sys
mx, sub, tlsaddr, cafile = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def hp(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)
msg = "Subject: py\r\n\r\nfrom python\r\n"
s = smtplib.SMTP(*hp(mx), timeout=10)
s.sendmail("py@remote.test", ["alice@example.org"], msg); print("ok plain")
s.sendmail("py@remote.test", ["alice@example.org", "bob@example.org"], msg); print("ok multi")
try:
    s.sendmail("py@remote.test", ["nobody@example.org"], msg); sys.exit("unknown user accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients["nobody@example.org"][0] == 550, e.recipients; print("ok unknown")
try:
    s.sendmail("py@remote.test", ["x@relay.test"], msg); sys.exit("relay accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert b"5.7.1" in e.recipients["x@relay.test"][1], e.recipients; print("ok relay")
s.quit()
for mech in ("PLAIN", "LOGIN"):
    s = smtplib.SMTP(*hp(sub), timeout=10)
    s.ehlo()
    try:
        s.user, s.password = "alice", "bad"
        s.auth(mech, getattr(s, "auth_" + mech.lower()))
        sys.exit("bad password accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535, e
    s.user, s.password = "alice", "alicepw"
    s.auth(mech, getattr(s, "auth_" + mech.lower()))
    try:
        s.sendmail("alice@example.org", ["x@relay.test"], msg); sys.exit("relay with auth accepted")
    except smtplib.SMTPRecipientsRefused:
        pass
    s.sendmail("alice@example.org", ["bob@example.org"], msg)
    s.quit(); print("ok auth " + mech)
ctx = ssl.create_default_context(cafile=cafile)
s = smtplib.SMTP(*hp(sub), timeout=10)
s.starttls(context=ctx); s.login("bob", "bobpw")
s.sendmail("bob@example.org", ["alice@example.org"], msg); s.quit(); print("ok starttls")
s = smtplib.SMTP_SSL(*hp(tlsaddr), context=ctx, timeout=10)
try:
    s.sendmail("bob@example.org", ["alice@example.org"], msg); sys.exit("MAIL before AUTH accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 530, e
s.login("bob", "bobpw")
try:
    s.sendmail("alice@example.org", ["alice@example.org"], msg); sys.exit("foreign sender accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 553, e
s.sendmail("bob@example.org", ["alice@example.org"], msg); s.quit(); print("ok implicit tls")
`

func TestPythonSMTPLib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	h := start(t, nil)
	cmd := exec.Command(py, "-c", pySMTPLib, h.mx, h.sub, h.tlsAddr, h.cert.CertFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "ok "); got != 8 {
		t.Fatalf("smtplib ran %d cases:\n%s", got, out)
	}
	// alice: plain, multi, starttls, implicit tls; bob: multi, PLAIN, LOGIN.
	if a, b := len(h.messages(t, "alice")), len(h.messages(t, "bob")); a != 4 || b != 3 {
		t.Fatalf("alice %d, bob %d messages", a, b)
	}
}

func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	h := start(t, nil)
	msg := filepath.Join(t.TempDir(), "msg.txt")
	os.WriteFile(msg, []byte("Subject: curl\r\n\r\nsent by curl\r\n"), 0o600)
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "--max-time", "10", "-T", msg}, args...)
		out, err := exec.Command(curl, args...).CombinedOutput()
		if (err == nil) != wantOK {
			t.Fatalf("curl %v: err=%v\n%s", args, err, out)
		}
		return string(out)
	}
	run(true, "smtp://"+h.mx, "--mail-from", "c@remote.test", "--mail-rcpt", "alice@example.org", "--mail-rcpt", "bob@example.org")
	run(false, "smtp://"+h.mx, "--mail-from", "c@remote.test", "--mail-rcpt", "nobody@example.org")
	run(false, "smtp://"+h.mx, "--mail-from", "c@remote.test", "--mail-rcpt", "x@relay.test")
	run(false, "smtp://"+h.sub, "--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.org")
	run(false, "smtp://"+h.sub, "--user", "alice:wrong", "--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.org")
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		run(true, "smtp://"+h.sub, "--login-options", "AUTH="+mech, "--user", "alice:alicepw",
			"--mail-from", "alice@example.org", "--mail-rcpt", "bob@example.org")
	}
	run(true, "smtp://"+h.sub, "--ssl-reqd", "--cacert", h.cert.CertFile, "--user", "bob:bobpw",
		"--mail-from", "bob@example.org", "--mail-rcpt", "alice@example.org")
	run(true, "smtps://"+h.tlsAddr, "--cacert", h.cert.CertFile, "--user", "bob:bobpw",
		"--mail-from", "bob@example.org", "--mail-rcpt", "alice@example.org")
	if a, b := len(h.messages(t, "alice")), len(h.messages(t, "bob")); a != 3 || b != 3 {
		t.Fatalf("alice %d, bob %d messages", a, b)
	}
}
