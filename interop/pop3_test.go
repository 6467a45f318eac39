//go:build interop

package interop

import (
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// POP3 clients (fetchmail, mpop) fetching mail that buzon's SMTP side
// delivered.

var pop3Messages = []string{
	"From: sender@remote.test\r\nTo: carol@example.test\r\nSubject: pop3 interop one\r\n\r\nfirst\r\n.leading dot\r\n..two dots\r\n",
	"From: sender@remote.test\r\nTo: carol@example.test\r\nSubject: pop3 interop two\r\n\r\nsecond\r\n\r\n.\r\nend\r\n",
}

// pop3Server starts buzon with TLS, user carol and pop3Messages delivered
// through SMTP.
func pop3Server(t *testing.T) *testserver.Server {
	t.Helper()
	ts := testserver.Start(t, testserver.Options{TLS: true})
	ts.AddUser(t, "carol", "carol-pw3")
	for _, m := range pop3Messages {
		c, err := smtp.Dial(ts.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("sender@remote.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("carol@example.test"); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(m))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
	}
	return ts
}

// pop3Stat logs in with a raw session and returns the message count.
func pop3Stat(t *testing.T, addr string) int {
	t.Helper()
	c := testserver.DialLine(t, addr)
	defer c.Close()
	c.Expect("+OK")
	c.Cmd("USER carol", "+OK")
	c.Cmd("PASS carol-pw3", "+OK")
	last := c.Cmd("STAT", "+OK")
	c.Cmd("QUIT", "+OK")
	var n, size int
	if _, err := fmt.Sscanf(last, "+OK %d %d", &n, &size); err != nil {
		t.Fatalf("STAT %q", last)
	}
	return n
}

// lfForm is a message as an MDA receives it (LF line ends).
func lfForm(m string) string { return strings.ReplaceAll(m, "\r\n", "\n") }

func TestFetchmail(t *testing.T) {
	fm, err := exec.LookPath("fetchmail")
	if err != nil {
		t.Skip("fetchmail not installed (Debian package fetchmail)")
	}
	ts := pop3Server(t)
	dir := t.TempDir()
	_, port := hostPort(ts.POP3)
	run := func(mode string) string {
		t.Helper()
		name := strings.ReplaceAll(mode, " ", "-")
		out := filepath.Join(dir, name+".mbox")
		rc := filepath.Join(dir, name+".rc")
		// invisible: no Received header of fetchmail's own, so what the MDA
		// gets can be compared byte for byte. STLS with the test CA.
		conf := fmt.Sprintf(`set no syslog
set invisible
poll %s protocol pop3 port %s auth password timeout 20
  user "carol" there with password "carol-pw3" is "carol" here
  fetchall %s
  sslproto tls1.2+ sslcertck sslcertfile %q sslcertpath %q
  mda "/bin/sh -c 'cat >> %s; echo ==== >> %s'"
`, "localhost", port, mode, ts.Cert.CertFile, dir, out, out)
		if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(fm, "--nodetach", "--nosyslog", "-f", rc, "--pidfile", filepath.Join(dir, "pid"))
		cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fetchmail %s: %v\n%s", mode, err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("fetchmail %s delivered nothing: %v\n%s", mode, err, b)
		}
		return string(got)
	}
	check := func(mode, got string) {
		t.Helper()
		parts := strings.Split(strings.TrimSuffix(got, "====\n"), "====\n")
		if len(parts) != len(pop3Messages) {
			t.Fatalf("%s: %d messages delivered, want %d:\n%s", mode, len(parts), len(pop3Messages), got)
		}
		for i, m := range pop3Messages {
			if !strings.HasSuffix(parts[i], lfForm(m)) || !strings.Contains(parts[i], "Return-Path: <sender@remote.test>\n") {
				t.Errorf("%s message %d:\n%q\nwant it to end with\n%q", mode, i+1, parts[i], lfForm(m))
			}
		}
	}
	check("keep", run("keep"))
	if n := pop3Stat(t, ts.POP3); n != 2 {
		t.Fatalf("after keep: %d messages on the server, want 2", n)
	}
	check("flush", run("nokeep flush"))
	if n := pop3Stat(t, ts.POP3); n != 0 {
		t.Fatalf("after nokeep flush: %d messages on the server, want 0", n)
	}
}

func TestMpop(t *testing.T) {
	mpop, err := exec.LookPath("mpop")
	if err != nil {
		t.Skip("mpop not installed (Debian package mpop)")
	}
	ts := pop3Server(t)
	dir := t.TempDir()
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	_, port := hostPort(ts.POP3)
	conf := filepath.Join(dir, "mpoprc")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`defaults
timeout 20
account default
host localhost
port %s
user carol
password carol-pw3
auth plain
tls on
tls_starttls on
tls_trust_file %s
delivery maildir %s
received_header off
uidls_file %s
keep off
`, port, ts.Cert.CertFile, md, filepath.Join(dir, "uidls"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mpop, "-C", conf, "-q")
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpop: %v\n%s", err, b)
	}
	got := fileContents(t, filepath.Join(md, "new"))
	if len(got) != len(pop3Messages) {
		t.Fatalf("mpop delivered %d messages, want %d", len(got), len(pop3Messages))
	}
	for _, m := range pop3Messages {
		found := false
		for _, g := range got {
			if strings.HasSuffix(g, lfForm(m)) && strings.HasPrefix(g, "Return-Path: <sender@remote.test>\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("no delivered file ends with %q; got %q", lfForm(m), got)
		}
	}
	if n := pop3Stat(t, ts.POP3); n != 0 {
		t.Fatalf("after mpop with keep off: %d messages on the server, want 0", n)
	}
}
