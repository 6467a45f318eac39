package mgmt_test

// End-to-end tests: the real `buzon serve` binary with SMTP, POP3 and MGMT
// running, every MGMT figure checked against traffic the test makes itself.

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
	"github.com/buzon-mail/buzon/mgmt/client"
)

func mgmtLogin(t *testing.T, s *testserver.Server) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.MGMT)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Timeout = 10 * time.Second
	if err := c.Login("admin", s.AdminPassword); err != nil {
		t.Fatalf("MGMT login: %v", err)
	}
	return c
}

func figure(t *testing.T, c *client.Client, cmd, key string) int64 {
	t.Helper()
	r := do(t, c, cmd)
	n, ok := r.Int(key)
	if !r.OK || !ok {
		t.Fatalf("%s: no %s in %+v", cmd, key, r)
	}
	return n
}

// pop3Login opens a logged-in POP3 session.
func pop3Login(t *testing.T, addr, user, pw string) *testserver.LineConn {
	t.Helper()
	p := testserver.DialLine(t, addr)
	p.Expect("+OK")
	p.Cmd("USER "+user, "+OK")
	p.Cmd("PASS "+pw, "+OK")
	return p
}

// retr reads message n and returns its size in octets as sent.
func retr(t *testing.T, l *testserver.LineConn, n int) int {
	t.Helper()
	size := 0
	for _, s := range retrLines(t, l, n) {
		size += len(s) + 2
	}
	return size
}

// retrLines sends RETR n, requires +OK and returns the message lines.
func retrLines(t *testing.T, l *testserver.LineConn, n int) []string {
	t.Helper()
	l.Cmd(fmt.Sprintf("RETR %d", n), "+OK")
	return l.DotLines()
}

func sendMail(t *testing.T, addr, to, body string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "Subject: test\r\n\r\n%s\r\n", body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func waitFigure(t *testing.T, c *client.Client, cmd, key string, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := figure(t, c, cmd, key)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s is %d, want %d", cmd, key, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestE2EFigures(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "alice", "alicepw")
	m := mgmtLogin(t, s)
	// The harness's readiness probes are connections too; let them close.
	waitFigure(t, m, "LIVE_CONNEC", "LIVE CONNECTIONS", 0)
	hist0 := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS")
	sent0 := figure(t, m, "BYTES_TRANS", "BYTES SENT")
	recv0 := figure(t, m, "BYTES_TRANS", "BYTES RECEIVED")
	smtp0 := figure(t, m, "STATUS", "SMTP HISTORIC CONNECTIONS")
	pop0 := figure(t, m, "STATUS", "POP3 HISTORIC CONNECTIONS")

	// A second MGMT session: MGMT counts in none of the SMTP+POP3 figures.
	mgmtLogin(t, s)
	// One SMTP delivery, then three sessions open at once.
	body := strings.Repeat("0123456789abcdef", 200)
	sendMail(t, s.SMTP, "alice@example.test", body)
	a := testserver.DialLine(t, s.SMTP)
	a.Expect("220")
	b := testserver.DialLine(t, s.Submission)
	b.Expect("220")
	p := pop3Login(t, s.POP3, "alice", "alicepw")
	if got := figure(t, m, "LIVE_CONNEC", "LIVE CONNECTIONS"); got != 3 {
		t.Fatalf("LIVE CONNECTIONS %d with 3 sessions open", got)
	}
	st := do(t, m, "STATUS")
	for key, want := range map[string]int64{"SMTP LIVE CONNECTIONS": 2, "POP3 LIVE CONNECTIONS": 1, "MGMT LIVE CONNECTIONS": 2, "MESSAGES ACCEPTED": 1, "MESSAGES DELIVERED": 1} {
		if got, _ := st.Int(key); got != want {
			t.Errorf("STATUS %s = %d, want %d", key, got, want)
		}
	}
	size := retr(t, p, 1)
	if size < len(body) {
		t.Fatalf("RETR returned %d octets", size)
	}
	p.Cmd("QUIT", "+OK")
	a.Cmd("QUIT", "")
	b.Cmd("QUIT", "")
	waitFigure(t, m, "LIVE_CONNEC", "LIVE CONNECTIONS", 0)
	if got := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS"); got != hist0+4 {
		t.Fatalf("HISTORIC CONNECTIONS %d, want %d + 4", got, hist0)
	}
	st = do(t, m, "STATUS")
	if got, _ := st.Int("SMTP HISTORIC CONNECTIONS"); got != smtp0+3 {
		t.Errorf("SMTP HISTORIC CONNECTIONS %d, want %d + 3 (submission included)", got, smtp0)
	}
	if got, _ := st.Int("POP3 HISTORIC CONNECTIONS"); got != pop0+1 {
		t.Errorf("POP3 HISTORIC CONNECTIONS %d, want %d + 1", got, pop0)
	}
	if got := figure(t, m, "BYTES_TRANS", "BYTES SENT"); got < sent0+int64(size) {
		t.Fatalf("BYTES SENT grew by %d, less than the %d-octet message", got-sent0, size)
	}
	if got := figure(t, m, "BYTES_TRANS", "BYTES RECEIVED"); got < recv0+int64(len(body)) {
		t.Fatalf("BYTES RECEIVED grew by %d, less than the %d-octet body sent", got-recv0, len(body))
	}
	if got, _ := do(t, m, "STATUS").Int("MESSAGES RETRIEVED"); got != 1 {
		t.Fatalf("MESSAGES RETRIEVED %d", got)
	}

	// Historic figures survive a restart.
	hist1 := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS")
	s.Restart(t)
	m = mgmtLogin(t, s)
	if got := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS"); got < hist1 {
		t.Fatalf("HISTORIC CONNECTIONS %d after restart, was %d", got, hist1)
	}
	if got, _ := do(t, m, "STATUS").Int("MESSAGES ACCEPTED"); got != 1 {
		t.Fatalf("MESSAGES ACCEPTED %d after restart", got)
	}

	// One transaction to two recipients: ACCEPTED counts the transaction,
	// DELIVERED the copies. A DELE applied at QUIT counts in DELETED.
	msg := "Subject: two\r\n\r\nfor both\r\n"
	if err := smtp.SendMail(s.SMTP, nil, "sender@remote.test", []string{"alice@example.test", "admin@example.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	p = pop3Login(t, s.POP3, "alice", "alicepw")
	p.Cmd("DELE 1", "+OK")
	p.Cmd("QUIT", "+OK")
	want := map[string]int64{"MESSAGES ACCEPTED": 2, "MESSAGES DELIVERED": 3, "MESSAGES DELETED": 1}
	deadline := time.Now().Add(5 * time.Second)
	for key, n := range want {
		for {
			got, _ := do(t, m, "STATUS").Int(key)
			if got == n {
				break
			}
			if time.Now().After(deadline) { // the QUIT's count may trail its +OK
				t.Fatalf("STATUS %s = %d, want %d", key, got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestE2EMaxConnec(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "alice", "alicepw")
	m := mgmtLogin(t, s)
	waitFigure(t, m, "LIVE_CONNEC", "LIVE CONNECTIONS", 0)
	hist0 := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS")
	if r := do(t, m, "MAX_CONNEC", "2"); !r.OK {
		t.Fatalf("MAX_CONNEC: %+v", r)
	}
	a := testserver.DialLine(t, s.SMTP)
	a.Expect("220")
	p := pop3Login(t, s.POP3, "alice", "alicepw")
	// A third client of either protocol is refused.
	c := testserver.DialLine(t, s.SMTP)
	c.Expect("421")
	d := testserver.DialLine(t, s.POP3)
	d.Expect("-ERR [SYS/TEMP]")
	// Open sessions keep working.
	p.Cmd("STAT", "+OK")
	if r := do(t, m, "MAX_CONNEC", "3"); !r.OK {
		t.Fatalf("MAX_CONNEC: %+v", r)
	}
	e := testserver.DialLine(t, s.POP3)
	e.Expect("+OK")
	if got := figure(t, m, "STATUS", "MAX CONNECTIONS"); got != 3 {
		t.Fatalf("MAX CONNECTIONS %d", got)
	}
	if got := figure(t, m, "STATUS", "REJECTED CONNECTIONS"); got != 2 {
		t.Fatalf("REJECTED CONNECTIONS %d", got)
	}
	// Refused connections count in HISTORIC too: five were accepted.
	if got := figure(t, m, "HISTORIC_CONNEC", "HISTORIC CONNECTIONS"); got != hist0+5 {
		t.Fatalf("HISTORIC CONNECTIONS %d, want %d + 5", got, hist0)
	}
	// The value is a run-time value: it survives a restart. (Sessions
	// left open would make the server wait its shutdown grace.)
	a.Close()
	p.Close()
	e.Close()
	s.Restart(t)
	m = mgmtLogin(t, s)
	if got := figure(t, m, "STATUS", "MAX CONNECTIONS"); got != 3 {
		t.Fatalf("MAX CONNECTIONS %d after restart", got)
	}
}

func TestE2ETimeout(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "alice", "alicepw")
	open := pop3Login(t, s.POP3, "alice", "alicepw")
	a := mgmtLogin(t, s)
	b := mgmtLogin(t, s)

	start := time.Now()
	if err := a.Send("TIMEOUT", "2"); err != nil {
		t.Fatal(err)
	}
	waitForPaused(t, b, true)
	rej0 := figure(t, b, "STATUS", "REJECTED CONNECTIONS")
	c := testserver.DialLine(t, s.SMTP)
	c.Expect("421")
	d := testserver.DialLine(t, s.POP3)
	d.Expect("-ERR [SYS/TEMP]")
	open.Cmd("STAT", "+OK")
	if got := figure(t, b, "STATUS", "REJECTED CONNECTIONS"); got != rej0+2 {
		t.Fatalf("REJECTED CONNECTIONS %d during the pause, want %d + 2", got, rej0)
	}
	r, err := a.ReadReply(true)
	if err != nil || !r.OK || len(r.Lines) != 1 || r.Lines[0] != "TIMEOUT COMPLETED" {
		t.Fatalf("TIMEOUT reply %+v %v", r, err)
	}
	if el := time.Since(start); el < 1500*time.Millisecond || el > 6*time.Second {
		t.Fatalf("TIMEOUT 2 answered after %v", el)
	}
	e := testserver.DialLine(t, s.SMTP)
	e.Expect("220")

	// The admin vanishes mid-TIMEOUT: the pause still ends on time.
	a.Send("TIMEOUT", "1")
	waitForPaused(t, b, true)
	a.Close()
	waitForPaused(t, b, false)
	f := testserver.DialLine(t, s.POP3)
	f.Expect("+OK")

	// RESUME from a second session ends a long pause; the first gets its reply.
	a = mgmtLogin(t, s)
	a.Send("TIMEOUT", "3600")
	waitForPaused(t, b, true)
	if r := do(t, b, "RESUME"); !r.OK {
		t.Fatalf("RESUME %+v", r)
	}
	if r, err := a.ReadReply(true); err != nil || !r.OK {
		t.Fatalf("TIMEOUT after RESUME: %+v %v", r, err)
	}
	g := testserver.DialLine(t, s.SMTP)
	g.Expect("220")
	if r := do(t, b, "RESUME"); r.OK || r.Status != "NOT PAUSED" {
		t.Fatalf("second RESUME %+v", r)
	}

	// A second, longer TIMEOUT moves the end: the first waits for it too.
	start = time.Now()
	a.Send("TIMEOUT", "1")
	waitForPaused(t, b, true)
	b.Send("TIMEOUT", "2")
	for _, c := range []*client.Client{a, b} {
		if r, err := c.ReadReply(true); err != nil || !r.OK {
			t.Fatalf("TIMEOUT reply %+v %v", r, err)
		}
		if el := time.Since(start); el < 1900*time.Millisecond {
			t.Fatalf("TIMEOUT answered after %v, before the later end", el)
		}
	}

	// The pause does not survive a restart.
	a.Send("TIMEOUT", "3600")
	waitForPaused(t, b, true)
	for _, l := range []*testserver.LineConn{open, e, f, g} {
		l.Close() // an open session would hold the shutdown for its grace
	}
	s.Restart(t)
	m := mgmtLogin(t, s)
	if got := figure(t, m, "STATUS", "PAUSED SECONDS LEFT"); got != 0 {
		t.Fatalf("PAUSED SECONDS LEFT %d after a restart", got)
	}
	h := testserver.DialLine(t, s.SMTP)
	h.Expect("220")
}

func waitForPaused(t *testing.T, c *client.Client, paused bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := figure(t, c, "STATUS", "PAUSED SECONDS LEFT")
		if (left > 0) == paused {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PAUSED SECONDS LEFT stays %d", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestE2EAccounts(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	m := mgmtLogin(t, s)

	// ADD_USER creates the Maildir; mail can be delivered at once.
	if r := do(t, m, "ADD_USER", "carol", "carolpw"); !r.OK {
		t.Fatalf("ADD_USER %+v", r)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "mail", "carol")); err != nil {
		t.Fatalf("no Maildir: %v", err)
	}
	sendMail(t, s.SMTP, "carol@example.test", "hello")
	if r := do(t, m, "USERS"); !r.OK || r.Lines[0] != "USER COUNT: 2" || r.Lines[2] != "carol" {
		t.Fatalf("USERS %+v", r)
	}

	// RESET_USER_PASSWORD: the new password works for POP3 and SMTP AUTH.
	r := do(t, m, "RESET_USER_PASSWORD", "carol")
	f, _ := r.Fields()
	pw := f["NEW PASSWORD"]
	if !r.OK || pw == "" || pw == "carolpw" {
		t.Fatalf("RESET_USER_PASSWORD %+v", r)
	}
	p := pop3Login(t, s.POP3, "carol", pw)
	sc, err := smtp.Dial(s.Submission)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Auth(smtp.PlainAuth("", "carol", pw, "127.0.0.1")); err != nil {
		t.Fatalf("SMTP AUTH with the new password: %v", err)
	}
	sc.Quit()

	// DELETE_USER refuses while the POP3 session holds the maildrop.
	if r := do(t, m, "DELETE_USER", "carol"); r.OK || r.Status != "USER IN USE" {
		t.Fatalf("DELETE_USER in use: %+v", r)
	}
	p.Cmd("QUIT", "+OK")
	// The lock is released when the session ends, which the client sees
	// slightly before the server is done.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, m, "DELETE_USER", "carol")
		if r.OK {
			break
		}
		if r.Status != "USER IN USE" || time.Now().After(deadline) {
			t.Fatalf("DELETE_USER: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	archived, _ := filepath.Glob(filepath.Join(s.DataDir, "deleted", "carol.*"))
	if len(archived) != 1 {
		t.Fatalf("archived Maildirs: %q", archived)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "mail", "carol")); !os.IsNotExist(err) {
		t.Fatalf("Maildir still in place: %v", err)
	}
	q := testserver.DialLine(t, s.POP3)
	q.Expect("+OK")
	q.Cmd("USER carol", "")
	q.Cmd("PASS "+pw, "-ERR")
	q.Close() // an open session would hold the restart below for its grace

	// MAX_USERS bounds ADD_USER and cannot go below the accounts there are.
	for _, step := range []struct {
		cmd    []string
		status string
	}{
		{[]string{"MAX_USERS", "2"}, "MAX_USERS"},
		{[]string{"ADD_USER", "dave", "davepw"}, "ADD_USER"},
		{[]string{"ADD_USER", "erin", "erinpw"}, "MAX USERS REACHED"},
		{[]string{"MAX_USERS", "1"}, "INVALID MAX USERS"},
	} {
		if r := do(t, m, step.cmd[0], step.cmd[1:]...); r.Status != step.status {
			t.Fatalf("%q: %+v", step.cmd, r)
		}
	}
	// MAX_USERS is a run-time value: kept in state.json across a restart.
	if _, err := os.Stat(filepath.Join(s.DataDir, "state.json")); err != nil {
		t.Fatalf("state.json: %v", err)
	}
	s.Restart(t)
	m = mgmtLogin(t, s)
	if got := figure(t, m, "STATUS", "MAX USERS"); got != 2 {
		t.Fatalf("MAX USERS %d after restart", got)
	}
}

func TestE2ESessionLimit(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	m := mgmtLogin(t, s)
	var open []*testserver.LineConn
	for range 15 {
		c := testserver.DialLine(t, s.MGMT)
		c.Expect("+OK buzon MGMT")
		open = append(open, c)
	}
	extra := testserver.DialLine(t, s.MGMT)
	extra.Expect("-ERR TOO MANY SESSIONS")
	if got := figure(t, m, "STATUS", "MGMT LIVE CONNECTIONS"); got != 16 {
		t.Fatalf("MGMT LIVE CONNECTIONS %d", got)
	}
	// MGMT sessions are not SMTP+POP3 connections.
	if got := figure(t, m, "LIVE_CONNEC", "LIVE CONNECTIONS"); got != 0 {
		t.Fatalf("LIVE CONNECTIONS %d", got)
	}
	// A freed slot takes the next session.
	open[0].Close()
	waitFigure(t, m, "STATUS", "MGMT LIVE CONNECTIONS", 15)
	again := testserver.DialLine(t, s.MGMT)
	again.Expect("+OK buzon MGMT")
}

// TRANSFORM needs transform.command, which SIGHUP may add; the switch is a
// run-time value kept across restarts.
func TestE2ETransformReload(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	m := mgmtLogin(t, s)
	if r := do(t, m, "TRANSFORM", "ON"); r.OK || r.Status != "NO TRANSFORM COMMAND CONFIGURED" {
		t.Fatalf("TRANSFORM ON without a command: %+v", r)
	}
	f, err := os.OpenFile(s.ConfigFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "transform:\n  command: [/bin/cat]\n")
	f.Close()
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "configuration reloaded", 5*time.Second)
	if r := do(t, m, "TRANSFORM", "ON"); !r.OK || r.Lines[0] != "TRANSFORMATIONS: ON" {
		t.Fatalf("TRANSFORM ON after reload: %+v", r)
	}
	s.Restart(t)
	m = mgmtLogin(t, s)
	if r := do(t, m, "TRANSFORM"); !r.OK || r.Lines[0] != "TRANSFORMATIONS: ON" {
		t.Fatalf("TRANSFORM after restart: %+v", r)
	}
}

// retrText reads message n whole.
func retrText(t *testing.T, l *testserver.LineConn, n int) string {
	t.Helper()
	var b strings.Builder
	for _, s := range retrLines(t, l, n) {
		b.WriteString(s + "\n")
	}
	return b.String()
}

// TRANSFORM is a real switch: the SMTP side pipes the next message through
// transform.command only while it is ON.
func TestE2ETransformSwitch(t *testing.T) {
	s := testserver.Start(t, testserver.Options{YAML: "transform:\n  command: [/usr/bin/tr, a-z, A-Z]\n"})
	s.AddUser(t, "alice", "alicepw")
	m := mgmtLogin(t, s)
	sendMail(t, s.SMTP, "alice@example.test", "first body")
	if r := do(t, m, "TRANSFORM", "ON"); !r.OK || r.Lines[0] != "TRANSFORMATIONS: ON" {
		t.Fatalf("TRANSFORM ON: %+v", r)
	}
	sendMail(t, s.SMTP, "alice@example.test", "second body")
	if r := do(t, m, "TRANSFORM", "OFF"); !r.OK || r.Lines[0] != "TRANSFORMATIONS: OFF" {
		t.Fatalf("TRANSFORM OFF: %+v", r)
	}
	sendMail(t, s.SMTP, "alice@example.test", "third body")
	p := pop3Login(t, s.POP3, "alice", "alicepw")
	for i, want := range []string{"first body", "SECOND BODY", "third body"} {
		if got := retrText(t, p, i+1); !strings.Contains(got, want) {
			t.Errorf("message %d lacks %q:\n%s", i+1, want, got)
		}
	}
	p.Cmd("QUIT", "")
}
