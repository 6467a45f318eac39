package pop3

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
	"github.com/buzon-mail/buzon/maildir"
)

// End-to-end tests against the real `buzon serve` binary: mail goes in
// through SMTP and comes out through POP3, read by real clients.

var e2eMessages = []string{
	"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: e2e one\r\n\r\nfirst line\r\n.leading dot\r\n..two dots\r\n",
	"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: e2e two\r\n\r\nsecond message\r\n\r\n.\r\nend\r\n",
}

// sendSMTP delivers msg to rcpt on the plain SMTP port (no TLS, no AUTH).
func sendSMTP(t testing.TB, addr, rcpt, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// startE2E starts buzon with TLS, a user alice and e2eMessages delivered.
func startE2E(t *testing.T) *testserver.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	srv := testserver.Start(t, testserver.Options{TLS: true})
	srv.AddUser(t, "alice", "alice-pw1")
	for _, m := range e2eMessages {
		sendSMTP(t, srv.SMTP, "alice@example.test", m)
	}
	return srv
}

// checkDelivered: each retrieved message is what SMTP accepted, byte for
// byte, behind the Return-Path and Received headers delivery adds.
func checkDelivered(t *testing.T, got []string) {
	t.Helper()
	if len(got) != len(e2eMessages) {
		t.Fatalf("retrieved %d messages, want %d", len(got), len(e2eMessages))
	}
	for i, m := range e2eMessages {
		if !strings.HasPrefix(got[i], "Return-Path: <sender@remote.test>\r\n") || !strings.HasSuffix(got[i], m) {
			t.Errorf("message %d:\n%q\nwant it to end with\n%q", i+1, got[i], m)
		}
	}
}

func popDial(t *testing.T, addr string) *client {
	t.Helper()
	return dial(t, addr)
}

// TestE2E shares one server (starting it costs most of the time): the
// read-only clients first, then deletion, then a crash.
func TestE2E(t *testing.T) {
	srv := startE2E(t)
	t.Run("raw", func(t *testing.T) {
		c := popDial(t, srv.POP3)
		c.login("alice", "alice-pw1")
		var got []string
		for i := range e2eMessages {
			_, m := c.retr(i + 1)
			got = append(got, m)
		}
		checkDelivered(t, got)
		c.cmd("QUIT")
	})
	t.Run("curl", func(t *testing.T) { testCurl(t, srv) })
	t.Run("poplib", func(t *testing.T) { testPoplib(t, srv) })
	t.Run("in use across processes", func(t *testing.T) {
		// This test process and the server are two processes sharing the
		// maildrop lock in the Maildir (SPEC §5).
		store, err := maildir.New(filepath.Join(srv.DataDir, "mail"), maildir.Options{Hostname: "test"})
		if err != nil {
			t.Fatal(err)
		}
		md, err := store.Maildir("alice")
		if err != nil {
			t.Fatal(err)
		}
		lock, err := md.Lock()
		if err != nil {
			t.Fatal(err)
		}
		c := popDial(t, srv.POP3)
		c.cmd("USER alice")
		if r := c.cmd("PASS alice-pw1"); r != "-ERR [IN-USE] Maildrop is locked by another session" {
			t.Fatalf("PASS while another process holds the lock: %q", r)
		}
		lock.Release()
		c.cmd("USER alice")
		if r := c.cmd("PASS alice-pw1"); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("PASS after release: %q", r)
		}
		if _, err := md.Lock(); !errors.Is(err, maildir.ErrLocked) {
			t.Fatalf("Lock while the server's session holds it: %v", err)
		}
		c2 := popDial(t, srv.POP3)
		c2.cmd("USER alice")
		if r := c2.cmd("PASS alice-pw1"); r != "-ERR [IN-USE] Maildrop is locked by another session" {
			t.Fatalf("second session: %q", r)
		}
		c.cmd("QUIT")
		waitFor(t, "lock released by QUIT", func() bool { return !md.Locked() })
	})
	t.Run("dele quit", func(t *testing.T) {
		before := mgmtStatus(t, srv)
		c := popDial(t, srv.POP3)
		c.login("alice", "alice-pw1")
		c.retr(2)
		c.cmd("TOP 1 0") // TOP is not a retrieval
		c.multi()
		c.cmd("DELE 1")
		if r := c.cmd("QUIT"); r != "+OK Bye, 1 messages deleted" {
			t.Fatalf("QUIT %q", r)
		}
		// The MGMT counters (SPEC §7) follow.
		after := mgmtStatus(t, srv)
		for key, want := range map[string]int64{"MESSAGES RETRIEVED": 1, "MESSAGES DELETED": 1} {
			if d := after[key] - before[key]; d != want {
				t.Errorf("%s grew by %d, want %d", key, d, want)
			}
		}
		c = popDial(t, srv.POP3)
		c.login("alice", "alice-pw1")
		if r := c.cmd("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
			t.Fatalf("STAT after DELE+QUIT: %q", r)
		}
		c.cmd("QUIT")
	})
	t.Run("killed server releases lock", func(t *testing.T) {
		c := popDial(t, srv.POP3)
		c.login("alice", "alice-pw1")
		c.cmd("DELE 1")
		srv.Kill()
		srv.Restart(t)
		c2 := popDial(t, srv.POP3)
		c2.login("alice", "alice-pw1") // fatal on IN-USE
		if r := c2.cmd("STAT"); !strings.HasPrefix(r, "+OK 1 ") {
			t.Fatalf("STAT after crash: %q (DELE without QUIT must remove nothing)", r)
		}
		c2.cmd("QUIT")
	})
}

func testCurl(t *testing.T, srv *testserver.Server) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "20", "-u", "alice:alice-pw1"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	list := run("pop3://" + srv.POP3 + "/")
	if lines := strings.Split(strings.TrimSpace(list), "\r\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "1 ") {
		t.Fatalf("curl list %q", list)
	}
	var got []string
	for _, n := range []string{"1", "2"} {
		got = append(got, run("pop3://"+srv.POP3+"/"+n))
	}
	checkDelivered(t, got)
	// POP3S with the test certificate.
	tlsOut := run("--cacert", srv.Cert.CertFile, "pop3s://localhost:"+port(srv.POP3TLS)+"/1")
	checkDelivered(t, []string{tlsOut, got[1]})
	// STLS on the plain port, required.
	stlsOut := run("--ssl-reqd", "--cacert", srv.Cert.CertFile, "pop3://localhost:"+port(srv.POP3)+"/2")
	checkDelivered(t, []string{got[0], stlsOut})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

const poplibScript = `
import json, poplib, ssl, sys
host, port, user, pw, cafile, mode = sys.argv[1:7]
p = poplib.POP3(host, int(port), timeout=20)
if mode == "stls":
    p.stls(ssl.create_default_context(cafile=cafile))
p.user(user)
p.pass_(pw)
count, size = p.stat()
msgs = []
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    msgs.append(b"".join(l + b"\r\n" for l in lines).decode("latin-1"))
uidl = [x.decode() for x in p.uidl()[1]]
p.quit()
print(json.dumps({"msgs": msgs, "uidl": uidl}))
`

func testPoplib(t *testing.T, srv *testserver.Server) {
	// Debian's interpreter first: wrappers around python3 can take
	// seconds to start.
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			t.Skip("python3 not installed")
		}
	}
	for _, mode := range []string{"plain", "stls"} {
		t.Run(mode, func(t *testing.T) {
			host, p, _ := net.SplitHostPort(srv.POP3)
			if mode == "stls" {
				host = "localhost"
			}
			start := time.Now()
			out, err := exec.Command(py, "-c", poplibScript, host, p, "alice", "alice-pw1", srv.Cert.CertFile, mode).CombinedOutput()
			t.Logf("poplib %s took %v", mode, time.Since(start))
			if err != nil {
				t.Fatalf("poplib: %v\n%s", err, out)
			}
			var res struct {
				Msgs []string
				UIDL []string
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			checkDelivered(t, res.Msgs)
			if len(res.UIDL) != 2 {
				t.Fatalf("uidl %q", res.UIDL)
			}
		})
	}
}

// TestE2EInsecureRemote: with trust_loopback off, loopback acts as a
// remote client: plaintext login only after STLS.
func TestE2EInsecureRemote(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	srv := testserver.Start(t, testserver.Options{TLS: true, YAML: "auth:\n  trust_loopback: false\n"})
	srv.AddUser(t, "alice", "alice-pw1")
	c := popDial(t, srv.POP3)
	if r := c.cmd("USER alice"); r != "-ERR [AUTH] Plaintext authentication disallowed without TLS" {
		t.Fatalf("USER %q", r)
	}
	c.send("CAPA\r\n")
	c.line()
	caps := strings.Join(c.multi(), " ")
	if !strings.Contains(caps, "STLS") || strings.Contains(caps, "SASL") {
		t.Fatalf("CAPA %q", caps)
	}
}

// TestE2ERefusal: over limits.max_connections_per_ip a client gets
// -ERR [SYS/TEMP] and the connection is closed; on POP3S after the
// handshake.
func TestE2ERefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	srv := testserver.Start(t, testserver.Options{TLS: true, YAML: "limits:\n  max_connections_per_ip: 1\n"})
	// The harness's readiness probes may still count for a moment: retry
	// until one session is in.
	var first *client
	deadline := time.Now().Add(10 * time.Second)
	for first == nil {
		c, err := net.Dial("tcp", srv.POP3)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if g, _ := r.ReadString('\n'); strings.HasPrefix(g, "+OK") {
			first = &client{t: t, conn: c, r: r}
			defer c.Close()
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no session admitted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := net.Dial("tcp", srv.POP3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(b), "-ERR [SYS/TEMP] ") {
		t.Fatalf("refusal %q", b)
	}
	tc, err := tls.Dial("tcp", srv.POP3TLS, srv.Cert.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ = io.ReadAll(tc)
	if !strings.HasPrefix(string(b), "-ERR [SYS/TEMP] ") {
		t.Fatalf("POP3S refusal %q", b)
	}
	first.cmd("QUIT")

	// An MGMT pause refuses new POP3 sessions on both listeners; the
	// TIMEOUT reply only comes when the pause ends.
	m, err := net.DialTimeout("tcp", srv.MGMT, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	mr := bufio.NewReader(m)
	fmt.Fprintf(m, "USER admin\r\nPASS %s\r\nTIMEOUT 30\r\n", srv.AdminPassword)
	for range 3 { // greeting, +OK USER, +OK PASS
		m.SetReadDeadline(time.Now().Add(10 * time.Second))
		if l, err := mr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("mgmt: %q %v", l, err)
		}
	}
	const paused = "-ERR [SYS/TEMP] Service paused, try again later\r\n"
	waitFor(t, "the pause to refuse POP3", func() bool {
		c, err := net.DialTimeout("tcp", srv.POP3, 5*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// Only the first line: an admitted session would wait for us.
		l, _ := bufio.NewReader(c).ReadString('\n')
		return l == paused
	})
	tc, err = tls.Dial("tcp", srv.POP3TLS, srv.Cert.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if b, _ = io.ReadAll(tc); string(b) != paused {
		t.Fatalf("POP3S while paused %q", b)
	}
}

// TestE2EShutdownAppliesNoDeletion: SIGTERM with a session that marked a
// message; once shutdown_grace expires the session is cut off, nothing is
// removed, and the maildrop is free after the restart.
func TestE2EShutdownAppliesNoDeletion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test in -short mode")
	}
	srv := testserver.Start(t, testserver.Options{YAML: "shutdown_grace: 200ms\n"})
	srv.AddUser(t, "alice", "alice-pw1")
	for _, m := range e2eMessages {
		sendSMTP(t, srv.SMTP, "alice@example.test", m)
	}
	c := popDial(t, srv.POP3)
	c.login("alice", "alice-pw1")
	if r := c.cmd("DELE 1"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("DELE %q", r)
	}
	srv.Stop()
	if r := c.line(); r != "<EOF>" {
		t.Fatalf("session not cut off: %q", r)
	}
	if log := srv.Log(); !strings.Contains(log, `end="server shutdown (no deletion)"`) {
		t.Errorf("no cut-off session in the log:\n%s", log)
	}
	srv.Restart(t)
	c = popDial(t, srv.POP3)
	c.login("alice", "alice-pw1")
	if r := c.cmd("STAT"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Fatalf("STAT after shutdown %q, want both messages", r)
	}
	c.cmd("QUIT")
}

// mgmtStatus logs in to MGMT as admin and returns STATUS's numbers.
func mgmtStatus(t *testing.T, srv *testserver.Server) map[string]int64 {
	t.Helper()
	m, err := net.DialTimeout("tcp", srv.MGMT, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(m)
	fmt.Fprintf(m, "USER admin\r\nPASS %s\r\nSTATUS\r\nQUIT\r\n", srv.AdminPassword)
	for range 4 { // greeting, +OK USER, +OK PASS, +OK STATUS
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("mgmt: %q %v", l, err)
		}
	}
	out := map[string]int64{}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("mgmt STATUS: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "." {
			return out
		}
		if k, v, ok := strings.Cut(l, ": "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out[k] = n
			}
		}
	}
}
