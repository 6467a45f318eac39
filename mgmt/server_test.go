package mgmt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/buzon-mail/buzon/internal/testlog"
	"github.com/buzon-mail/buzon/mgmt"
	"github.com/buzon-mail/buzon/mgmt/client"
	"github.com/buzon-mail/buzon/mgmt/mgmttest"
	"github.com/buzon-mail/buzon/users"
)

type harness = mgmttest.Server

func start(t *testing.T, mod func(*mgmt.Config)) *harness { return mgmttest.Start(t, mod) }

// raw is a scripted send/expect dialog over a real socket.
type raw struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, c: c, br: bufio.NewReader(c)}
	r.expect(mgmt.Greeting)
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("send %q: %v", s, err)
	}
}

func (r *raw) line() (string, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := r.br.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		r.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (r *raw) expect(want ...string) {
	r.t.Helper()
	for _, w := range want {
		got, err := r.line()
		if err != nil {
			r.t.Fatalf("want %q, got error %v", w, err)
		}
		if got != w {
			r.t.Fatalf("want %q, got %q", w, got)
		}
	}
}

// expectClosed waits for the server to close the connection.
func (r *raw) expectClosed() {
	r.t.Helper()
	for {
		l, err := r.line()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return
			}
			r.t.Fatalf("want close, got %v", err)
		}
		_ = l
	}
}

func (r *raw) login() {
	r.t.Helper()
	r.send("USER admin\r\nPASS secret\r\n")
	r.expect("+OK USER", "+OK PASS")
}

func login(t *testing.T, addr, user, pw string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pw); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func do(t *testing.T, c *client.Client, cmd string, args ...string) *client.Reply {
	t.Helper()
	r, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return r
}

// activeCapa is CAPA's list after login: every ACTIVE command with its
// arguments (SPEC §7's table).
var activeCapa = []string{"NOOP", "CAPA", "HISTORIC_CONNEC", "LIVE_CONNEC", "BYTES_TRANS",
	"USERS", "STATUS", "MAX_USERS <n>", "MAX_CONNEC <n>", "TIMEOUT <seconds>", "RESUME",
	"ADD_USER <name> <password>", "DELETE_USER <name>", "RESET_USER_PASSWORD <name>",
	"CHANGE_PASSWORD <old> <new>", "TRANSFORM [ON|OFF]", "QUIT"}

func TestAuthPhase(t *testing.T) {
	h := start(t, nil)
	h.Users.Add("bob", "bobpw", false)
	tests := []struct {
		name   string
		script []string // alternating send, expect... ; "" send means expect only
	}{
		// Before login CAPA is the whole command list (no STLS without TLS).
		{"capa before login", []string{"CAPA\r\n", "+OK CAPA", "CAPA", "USER <name>", "PASS <password>",
			"NOOP", "HISTORIC_CONNEC", "LIVE_CONNEC", "BYTES_TRANS", "USERS", "STATUS", "MAX_USERS <n>",
			"MAX_CONNEC <n>", "TIMEOUT <seconds>", "RESUME", "ADD_USER <name> <password>", "DELETE_USER <name>",
			"RESET_USER_PASSWORD <name>", "CHANGE_PASSWORD <old> <new>", "TRANSFORM [ON|OFF]", "QUIT", "."}},
		{"lower case and LF only", []string{"user admin\npass secret\n", "+OK USER", "+OK PASS"}},
		// Every AUTH-phase failure is a bare -ERR (SPEC §7).
		{"unknown user looks like any USER", []string{"USER nobody\r\n", "+OK USER", "PASS x\r\n", "-ERR"}},
		{"wrong password", []string{"USER admin\r\nPASS nope\r\n", "+OK USER", "-ERR"}},
		{"not an admin", []string{"USER bob\r\nPASS bobpw\r\n", "+OK USER", "-ERR"}},
		{"PASS first", []string{"PASS secret\r\n", "-ERR"}},
		{"active command before login", []string{"STATUS\r\n", "-ERR"}},
		{"unknown command", []string{"FOO\r\n", "-ERR"}},
		{"missing argument", []string{"USER\r\n", "-ERR"}},
		{"extra argument", []string{"USER a b\r\n", "-ERR"}},
		{"no TLS configured", []string{"STLS\r\n", "-ERR"}},
		{"NUL byte", []string{"USER a\x00b\r\n", "-ERR"}},
		{"invalid UTF-8", []string{"USER \xff\xfe\r\n", "-ERR"}},
		{"overlong line keeps its reason", []string{"USER " + strings.Repeat("a", 600) + "\r\n", "-ERR LINE TOO LONG"}},
		{"retry after failure", []string{"USER admin\r\nPASS x\r\nUSER admin\r\nPASS secret\r\n", "+OK USER", "-ERR", "+OK USER", "+OK PASS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, h.Addr)
			for _, s := range tc.script {
				if strings.HasSuffix(s, "\n") {
					r.send(s)
				} else {
					r.expect(s)
				}
			}
			r.send("QUIT\r\n")
			r.expect("+OK GOODBYE")
			r.expectClosed()
		})
	}
}

func TestPlaintextRefusedForRemote(t *testing.T) {
	h := start(t, func(c *mgmt.Config) { c.TrustLoopback = false })
	r := dialRaw(t, h.Addr)
	r.send("USER admin\r\nPASS secret\r\n")
	r.expect("+OK USER", "-ERR")
}

func TestThrottleClosesSession(t *testing.T) {
	h := start(t, nil)
	h.Throttle.CloseAt = 2
	r := dialRaw(t, h.Addr)
	r.send("USER admin\r\nPASS a\r\n")
	r.expect("+OK USER", "-ERR")
	r.send("USER admin\r\nPASS b\r\n")
	r.expect("+OK USER", "-ERR")
	r.expectClosed()
	// Blocked addresses are turned away even with the right password.
	r = dialRaw(t, h.Addr)
	r.send("USER admin\r\nPASS secret\r\n")
	r.expect("+OK USER", "-ERR")
	r.expectClosed()
}

func TestFigures(t *testing.T) {
	h := start(t, nil)
	h.Stats.Set(accounting.Stats{
		Historic: 7, Live: 3, Rejected: 2, BytesSent: 1000, BytesReceived: 500,
		SMTPHistoric: 4, SMTPLive: 1, POP3Historic: 3, POP3Live: 2, MGMTLive: 1,
		MessagesAccepted: 5, MessagesDelivered: 6, MessagesRetrieved: 2, MessagesDeleted: 1,
		Started: time.Now().Add(-90 * time.Second),
	})
	r := dialRaw(t, h.Addr)
	r.login()
	r.send("HISTORIC_CONNEC\r\nlive_connec\r\nBytes_Trans\r\nNOOP\r\nUSERS\r\n")
	r.expect("+OK HISTORIC_CONNEC", "HISTORIC CONNECTIONS: 7", ".",
		"+OK LIVE_CONNEC", "LIVE CONNECTIONS: 3", ".",
		"+OK BYTES_TRANS", "BYTES SENT: 1000", "BYTES RECEIVED: 500", ".",
		"+OK NOOP", ".",
		"+OK USERS", "USER COUNT: 1", "admin", ".")
	h.Pause.Pause(30 * time.Second)
	defer h.Pause.Resume()
	r.send("STATUS\r\n")
	r.expect("+OK STATUS",
		"HISTORIC CONNECTIONS: 7", "LIVE CONNECTIONS: 3", "REJECTED CONNECTIONS: 2",
		"BYTES SENT: 1000", "BYTES RECEIVED: 500",
		"SMTP HISTORIC CONNECTIONS: 4", "SMTP LIVE CONNECTIONS: 1",
		"POP3 HISTORIC CONNECTIONS: 3", "POP3 LIVE CONNECTIONS: 2",
		"MGMT LIVE CONNECTIONS: 1",
		"MESSAGES ACCEPTED: 5", "MESSAGES DELIVERED: 6", "MESSAGES RETRIEVED: 2", "MESSAGES DELETED: 1",
		"TOTAL USERS: 1", "MAX USERS: 10", "MAX CONNECTIONS: 1000", "TRANSFORMATIONS: OFF",
		"PAUSED SECONDS LEFT: 30")
	up, _ := r.line()
	if up != "UPTIME SECONDS: 90" && up != "UPTIME SECONDS: 91" {
		t.Fatalf("uptime line %q", up)
	}
	r.expect(".")
	r.send("CAPA\r\n")
	r.expect(append(append([]string{"+OK CAPA"}, activeCapa...), ".")...)
}

func TestLimitsAndTransform(t *testing.T) {
	h := start(t, nil)
	h.Users.Add("u1", "pw1", false)
	h.Users.Add("u2", "pw2", false)
	steps := []struct{ send, want string }{
		{"MAX_USERS 5", "+OK MAX_USERS|MAX USERS CHANGED SUCCESSFULLY|."},
		{"MAX_USERS 2", "-ERR INVALID MAX USERS"}, // below the 3 accounts
		{"MAX_USERS 0", "-ERR INVALID MAX USERS"},
		{"MAX_USERS -4", "-ERR INVALID MAX USERS"},
		{"MAX_USERS abc", "-ERR INVALID MAX USERS"},
		{"MAX_USERS", "-ERR INVALID MAX USERS"},
		{"MAX_USERS 3", "+OK MAX_USERS|MAX USERS CHANGED SUCCESSFULLY|."},
		{"ADD_USER u3 pw3", "-ERR MAX USERS REACHED"},
		{"MAX_CONNEC 2", "+OK MAX_CONNEC|MAX CONNECTIONS CHANGED SUCCESSFULLY|."},
		{"MAX_CONNEC 0", "-ERR INVALID MAX CONNECTIONS"},
		{"MAX_CONNEC 1000001", "-ERR INVALID MAX CONNECTIONS"},
		{"MAX_CONNEC 99999999999999", "-ERR INVALID MAX CONNECTIONS"},
		{"MAX_CONNEC 1000000", "+OK MAX_CONNEC|MAX CONNECTIONS CHANGED SUCCESSFULLY|."},
		{"TRANSFORM", "+OK TRANSFORM|TRANSFORMATIONS: OFF|."},
		{"TRANSFORM on", "+OK TRANSFORM|TRANSFORMATIONS: ON|."},
		{"TRANSFORM", "+OK TRANSFORM|TRANSFORMATIONS: ON|."},
		{"TRANSFORM OFF", "+OK TRANSFORM|TRANSFORMATIONS: OFF|."},
		{"TRANSFORM MAYBE", "-ERR INVALID ARGUMENTS"},
		{"TIMEOUT 0", "-ERR INVALID TIMEOUT"},
		{"TIMEOUT 86401", "-ERR INVALID TIMEOUT"},
		{"TIMEOUT x", "-ERR INVALID TIMEOUT"},
		{"RESUME", "-ERR NOT PAUSED"},
	}
	r := dialRaw(t, h.Addr)
	r.login()
	for _, s := range steps {
		r.send(s.send + "\r\n")
		r.expect(strings.Split(s.want, "|")...)
	}
	if h.Runtime.MaxUsers() != 3 || h.Runtime.MaxConnections() != 1000000 || h.Runtime.TransformEnabled() {
		t.Fatalf("runtime not applied: %d %d %v", h.Runtime.MaxUsers(), h.Runtime.MaxConnections(), h.Runtime.TransformEnabled())
	}
	h.Srv.SetTransformConfigured(false)
	r.send("TRANSFORM ON\r\nTRANSFORM OFF\r\n")
	r.expect("-ERR NO TRANSFORM COMMAND CONFIGURED", "+OK TRANSFORM", "TRANSFORMATIONS: OFF", ".")
}

func TestAccounts(t *testing.T) {
	h := start(t, nil)
	h.Users.Add("admin2", "pw", true)
	r := dialRaw(t, h.Addr)
	r.login()
	steps := []struct{ send, want string }{
		{"ADD_USER Carol pw1", "+OK ADD_USER|USER ADDED SUCCESSFULLY|."},
		{"ADD_USER carol pw2", "-ERR USER ALREADY EXISTS"},
		{"ADD_USER ../etc pw", "-ERR INVALID USERNAME"},
		{"ADD_USER postmaster pw", "-ERR INVALID USERNAME"},
		{"ADD_USER dave " + strings.Repeat("p", 73), "-ERR INVALID PASSWORD"},
		{"ADD_USER dave", "-ERR INVALID ARGUMENTS"},
		{"RESET_USER_PASSWORD carol", "+OK RESET_USER_PASSWORD|PASSWORD RESET SUCCESSFULLY|NEW PASSWORD: Rnd0mPass|."},
		{"RESET_USER_PASSWORD nobody", "-ERR USER NOT FOUND"},
		{"DELETE_USER nobody", "-ERR USER NOT FOUND"},
		{"DELETE_USER ../x", "-ERR USER NOT FOUND"},
		{"DELETE_USER admin", "-ERR ADMIN CANNOT BE DELETED"},
		{"CHANGE_PASSWORD wrong new", "-ERR INVALID PASSWORD"},
		{"CHANGE_PASSWORD secret " + strings.Repeat("x", 73), "-ERR INVALID PASSWORD"},
		{"CHANGE_PASSWORD secret newsecret", "+OK CHANGE_PASSWORD|PASSWORD CHANGED SUCCESSFULLY|."},
	}
	for _, s := range steps {
		r.send(s.send + "\r\n")
		r.expect(strings.Split(s.want, "|")...)
	}
	if !h.Mail.Has("carol") {
		t.Fatal("ADD_USER did not create the Maildir")
	}
	if h.Users.Password("carol") != "Rnd0mPass" || h.Users.Password("admin") != "newsecret" {
		t.Fatal("passwords not changed")
	}
	// A POP3 session holds carol's maildrop.
	release, _ := h.Mail.Hold("carol")
	r.send("DELETE_USER carol\r\n")
	r.expect("-ERR USER IN USE")
	release()
	r.send("DELETE_USER carol\r\n")
	r.expect("+OK DELETE_USER", "USER DELETED SUCCESSFULLY", ".")
	if h.Mail.Has("carol") || len(h.Mail.Archived) != 1 {
		t.Fatal("Maildir not archived")
	}
	// The last admin: admin2 logs in and deletes admin; then admin2 is last.
	c := login(t, h.Addr, "admin2", "pw")
	if rep := do(t, c, "DELETE_USER", "admin"); !rep.OK {
		t.Fatalf("delete admin: %+v", rep)
	}
	// admin's own session sees its account gone at the next command.
	r.send("NOOP\r\n")
	r.expect("-ERR AUTHENTICATION REQUIRED")
	r.expectClosed()
	if rep := do(t, c, "DELETE_USER", "admin2"); rep.OK || rep.Status != "ADMIN CANNOT BE DELETED" {
		t.Fatalf("delete self: %+v", rep)
	}
}

func TestFraming(t *testing.T) {
	h := start(t, nil)
	r := dialRaw(t, h.Addr)
	r.login()
	// Exactly 512 octets with CRLF is fine; 513 is too long, and the session
	// goes on with the next line.
	ok := "NOOP" + strings.Repeat(" ", 512-2-4) + "\r\n"
	long := "NOOP" + strings.Repeat(" ", 512-2-4+1) + "\r\n"
	r.send(ok + long + "NOOP\r\n")
	r.expect("+OK NOOP", ".", "-ERR LINE TOO LONG", "+OK NOOP", ".")
	// A very long line (many buffers) is discarded as one, whatever its
	// length, and the session goes on (SPEC §7).
	for _, n := range []int{5000, 300 << 10} {
		sent := make(chan error, 1)
		go func() { _, err := io.WriteString(r.c, strings.Repeat("A", n)+"\nNOOP\n"); sent <- err }()
		r.expect("-ERR LINE TOO LONG", "+OK NOOP", ".")
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	r.send("NO\x00OP\r\n\xff\xfe\r\n\r\nN0OP\r\n")
	r.expect("-ERR INVALID COMMAND LINE", "-ERR INVALID COMMAND LINE", "-ERR INVALID COMMAND LINE", "-ERR INVALID COMMAND LINE")
	// The bad-line count resets after a good command: 9 more bad ones are
	// tolerated, the 10th in a row closes.
	r.send("NOOP\r\n")
	r.expect("+OK NOOP", ".")
	for range 9 {
		r.send("BOGUS\r\n")
		r.expect("-ERR UNKNOWN COMMAND")
	}
	r.send("BOGUS\r\n")
	r.expect("-ERR TOO MANY BAD COMMANDS")
	r.expectClosed()
}

func TestFloodRefusedCleanly(t *testing.T) {
	h := start(t, nil)
	garbage := []string{
		strings.Repeat("\x00", 3000),
		strings.Repeat("\xff", 100) + "\n",
		strings.Repeat("x", 1<<20), // one endless line
	}
	for _, g := range garbage {
		c, err := net.Dial("tcp", h.Addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() { io.WriteString(c, strings.Repeat(g+"\n", 20)) }()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("server did not close: %v", err)
		}
		c.Close()
	}
	r := dialRaw(t, h.Addr)
	r.login()
	r.send("NOOP\r\n")
	r.expect("+OK NOOP", ".")
}

func TestTimeoutAndResume(t *testing.T) {
	h := start(t, nil)
	a := login(t, h.Addr, "admin", "secret")
	startT := time.Now()
	rep := do(t, a, "TIMEOUT", "1")
	if el := time.Since(startT); !rep.OK || el < 900*time.Millisecond || el > 3*time.Second {
		t.Fatalf("TIMEOUT 1: %+v after %v", rep, el)
	}
	if len(rep.Lines) != 1 || rep.Lines[0] != "TIMEOUT COMPLETED" {
		t.Fatalf("TIMEOUT lines %q", rep.Lines)
	}
	if h.Pause.Remaining() != 0 {
		t.Fatal("still paused")
	}

	// A long pause; a second admin sees it in STATUS and ends it.
	if err := a.Send("TIMEOUT", "3600"); err != nil {
		t.Fatal(err)
	}
	b := login(t, h.Addr, "admin", "secret")
	waitFor(t, func() bool { return h.Pause.Remaining() > 0 })
	if n, _ := do(t, b, "STATUS").Int("PAUSED SECONDS LEFT"); n < 3590 {
		t.Fatalf("paused seconds left %d", n)
	}
	if rep := do(t, b, "RESUME"); !rep.OK || rep.Lines[0] != "SERVICE RESUMED" {
		t.Fatalf("RESUME: %+v", rep)
	}
	rep, err := a.ReadReply(true)
	if err != nil || !rep.OK || rep.Status != "TIMEOUT" {
		t.Fatalf("waiting TIMEOUT: %+v %v", rep, err)
	}
	if rep := do(t, a, "NOOP"); !rep.OK {
		t.Fatal("session did not go on after TIMEOUT")
	}
}

func TestTimeoutAdminVanishes(t *testing.T) {
	h := start(t, nil)
	a := login(t, h.Addr, "admin", "secret")
	if err := a.Send("TIMEOUT", "1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.Pause.Remaining() > 0 })
	a.Close()
	// The session ends at once (its slot is free) and the pause on time.
	waitFor(t, func() bool { return h.Srv.Sessions() == 0 })
	waitFor(t, func() bool { return h.Pause.Remaining() == 0 })
}

func TestTimeoutExtends(t *testing.T) {
	h := start(t, nil)
	a := login(t, h.Addr, "admin", "secret")
	b := login(t, h.Addr, "admin", "secret")
	startT := time.Now()
	a.Send("TIMEOUT", "2")
	waitFor(t, func() bool { return h.Pause.Remaining() > 0 })
	b.Send("TIMEOUT", "1")
	// Both are answered when the later end is reached.
	for _, c := range []*client.Client{b, a} {
		rep, err := c.ReadReply(true)
		if err != nil || !rep.OK {
			t.Fatalf("%+v %v", rep, err)
		}
		if el := time.Since(startT); el < 1900*time.Millisecond {
			t.Fatalf("answered after %v, before the later end", el)
		}
	}
}

func TestShutdownEndsWaitingTimeout(t *testing.T) {
	h := start(t, nil)
	a := login(t, h.Addr, "admin", "secret")
	a.Send("TIMEOUT", "3600")
	waitFor(t, func() bool { return h.Pause.Remaining() > 0 })
	idle := dialRaw(t, h.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := h.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	idle.expectClosed()
	h.Pause.Resume()
}

func TestLoginTimeout(t *testing.T) {
	h := start(t, func(c *mgmt.Config) { c.LoginTimeout = 200 * time.Millisecond })
	r := dialRaw(t, h.Addr)
	r.send("USER admin\r\n")
	r.expect("+OK USER")
	r.expectClosed()
}

func TestSTLS(t *testing.T) {
	cert := testcert.New(t)
	h := start(t, func(c *mgmt.Config) { c.TLS = cert.Server; c.TrustLoopback = false })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, h.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout = 5 * time.Second
	rep := do(t, c, "CAPA")
	if !strings.Contains(strings.Join(rep.Lines, ","), "STLS") {
		t.Fatalf("CAPA without STLS: %q", rep.Lines)
	}
	if err := c.StartTLS(cert.Client); err != nil {
		t.Fatal(err)
	}
	rep = do(t, c, "CAPA")
	if strings.Contains(strings.Join(rep.Lines, ","), "STLS") {
		t.Fatalf("CAPA offers STLS again: %q", rep.Lines)
	}
	if rep := do(t, c, "STLS"); rep.OK {
		t.Fatal("second STLS accepted")
	}
	if err := c.Login("admin", "secret"); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}

	// Plaintext injected behind STLS closes the session.
	r := dialRaw(t, h.Addr)
	r.send("STLS\r\nUSER admin\r\n")
	r.expectClosed()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNoArgumentLogged(t *testing.T) {
	var logBuf testlog.Buffer
	h := start(t, func(c *mgmt.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r := dialRaw(t, h.Addr)
	r.send("USER admin\r\nPASS WrongPw1\r\nPASS Extra1 Extra2\r\nUSER admin\r\nPASS secret\r\n")
	r.expect("+OK USER", "-ERR", "-ERR", "+OK USER", "+OK PASS")
	r.send("ADD_USER frank FrankPw2\r\nMAX_CONNEC 4242\r\nDELETE_USER frank\r\nCHANGE_PASSWORD WrongPw3 x\r\nCHANGE_PASSWORD secret NewPw4\r\n" +
		"ADD_USER Only1Arg\r\nBOGUS Bogus5\r\nNOOP Noop6\r\nADD_USER x " + strings.Repeat("Long7", 120) + "\r\nQUIT\r\n")
	r.expect("+OK ADD_USER", "USER ADDED SUCCESSFULLY", ".",
		"+OK MAX_CONNEC", "MAX CONNECTIONS CHANGED SUCCESSFULLY", ".",
		"+OK DELETE_USER", "USER DELETED SUCCESSFULLY", ".", "-ERR INVALID PASSWORD",
		"+OK CHANGE_PASSWORD", "PASSWORD CHANGED SUCCESSFULLY", ".",
		"-ERR INVALID ARGUMENTS", "-ERR UNKNOWN COMMAND", "-ERR INVALID ARGUMENTS", "-ERR LINE TOO LONG", "+OK GOODBYE")
	r.expectClosed()
	waitFor(t, func() bool { return h.Srv.Sessions() == 0 })
	log := logBuf.String()
	for _, secret := range []string{"WrongPw1", "Extra1", "Extra2", "secret", "frank", "FrankPw2", "WrongPw3", "NewPw4", "Only1Arg", "Bogus5", "Noop6", "Long7", "4242"} {
		if strings.Contains(log, secret) {
			t.Errorf("log holds %q:\n%s", secret, log)
		}
	}
	if n := strings.Count(log, `msg="mgmt auth failed" ip=127.0.0.1 `); n != 2 {
		t.Errorf("%d auth failure lines:\n%s", n, log)
	}
}

func TestDotStuffing(t *testing.T) {
	h := start(t, nil)
	// The real store never makes such a name; the fake lets the framing be
	// tested.
	if err := h.Users.Add(".dot", "pw", false); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, h.Addr)
	r.login()
	r.send("USERS\r\n")
	r.expect("+OK USERS", "USER COUNT: 2", "..dot", "admin", ".")
}

// flaky fails its first Accept the way a process out of descriptors does.
type flaky struct {
	net.Listener
	failed atomic.Bool
}

func (f *flaky) Accept() (net.Conn, error) {
	if !f.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

func TestAcceptErrorRetried(t *testing.T) {
	h := start(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.Srv.Serve(&flaky{Listener: l})
	r := dialRaw(t, l.Addr().String())
	r.login()
}

// Commands pipelined behind a TIMEOUT wait for it: replies stay in order.
func TestTimeoutPipelined(t *testing.T) {
	h := start(t, nil)
	r := dialRaw(t, h.Addr)
	r.login()
	begin := time.Now()
	r.send("TIMEOUT 1\r\nNOOP\r\nRESUME\r\n")
	r.expect("+OK TIMEOUT", "TIMEOUT COMPLETED", ".")
	if el := time.Since(begin); el < 900*time.Millisecond {
		t.Fatalf("TIMEOUT answered after %v", el)
	}
	r.expect("+OK NOOP", ".", "-ERR NOT PAUSED")
}

// Slow clients: the login time bounds the whole AUTH phase however the
// bytes trickle in; after login the idle time applies per read instead.
func TestSlowClients(t *testing.T) {
	h := start(t, func(c *mgmt.Config) {
		c.LoginTimeout = 300 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
	})

	trickler := dialRaw(t, h.Addr)
	begin := time.Now()
	go func() {
		for i := 0; i < 40; i++ { // one byte every 25 ms, never a whole line
			if _, err := trickler.c.Write([]byte("U")); err != nil {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	trickler.expectClosed()
	if el := time.Since(begin); el > 900*time.Millisecond {
		t.Fatalf("trickling client kept for %v with a 300ms login time", el)
	}

	busy := dialRaw(t, h.Addr)
	busy.login()
	for range 6 { // 600 ms of activity, past the login time
		time.Sleep(100 * time.Millisecond)
		busy.send("NOOP\r\n")
		busy.expect("+OK NOOP", ".")
	}
	idleFrom := time.Now()
	busy.expectClosed()
	if el := time.Since(idleFrom); el < 300*time.Millisecond {
		t.Fatalf("logged-in session closed after %v idle, before the 400ms idle time", el)
	}

	// A client vanishing in the middle of a line frees its session.
	gone := dialRaw(t, h.Addr)
	gone.login()
	gone.send("STAT")
	gone.c.Close()
	waitFor(t, func() bool { return h.Srv.Sessions() == 0 })
	r := dialRaw(t, h.Addr)
	r.login()
	r.send("NOOP\r\n")
	r.expect("+OK NOOP", ".")
}

// lastAdminStore answers every Delete as the store does when another
// session has just made the account the last admin (a race no single
// session can stage).
type lastAdminStore struct{ mgmt.UserStore }

func (lastAdminStore) Delete(string) error { return fmt.Errorf("delete: %w", users.ErrLastAdmin) }

func TestDeleteLastAdminRace(t *testing.T) {
	h := start(t, func(c *mgmt.Config) { c.Users = lastAdminStore{c.Users} })
	h.Users.Add("admin2", "pw", true)
	r := dialRaw(t, h.Addr)
	r.login()
	r.send("DELETE_USER admin2\r\n")
	r.expect("-ERR ADMIN CANNOT BE DELETED")
	if _, err := h.Users.Lookup("admin2"); err != nil {
		t.Fatalf("admin2 gone: %v", err)
	}
}
