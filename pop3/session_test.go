package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/throttle"

	"github.com/buzon-mail/buzon/internal/testlog"
)

// QUIT makes its removals durable (one Sync after the last removal)
// before it answers +OK, and reports a failed Sync as RFC 1939 §6 says.
func TestQuitSyncsRemovals(t *testing.T) {
	cases := []struct {
		name     string
		dele     []string
		failSync bool
		reply    string
		syncs    []int // removals done before each Sync
	}{
		{"two removed", []string{"1", "3"}, false, "+OK Bye, 2 messages deleted", []int{2}},
		{"nothing marked", nil, false, "+OK Bye, 0 messages deleted", nil},
		{"marked then reset", []string{"2", "RSET"}, false, "+OK Bye, 0 messages deleted", nil},
		{"sync fails", []string{"4"}, true, "-ERR [SYS/TEMP] Some deleted messages not removed", []int{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			d := st.add("alice", fixture...)
			d.failSync = tc.failSync
			c := dial(t, startServer(t, newTestServer(st)))
			c.login("alice", "secret")
			for _, n := range tc.dele {
				cmd := "DELE " + n
				if n == "RSET" {
					cmd = n
				}
				if r := c.cmd(cmd); !strings.HasPrefix(r, "+OK") {
					t.Fatalf("%s: %q", cmd, r)
				}
			}
			if r := c.cmd("QUIT"); r != tc.reply {
				t.Fatalf("QUIT %q, want %q", r, tc.reply)
			}
			// The reply is out, so the Sync must already have happened.
			if got := d.syncLog(); !slices.Equal(got, tc.syncs) {
				t.Fatalf("syncs %v, want %v", got, tc.syncs)
			}
			if c.line() != "<EOF>" {
				t.Fatal("session not closed after QUIT")
			}
		})
	}
}

// TestLineLimits: command lines up to 1024 octets and SASL lines up to
// 4096 (CRLF included, SPEC §5); beyond them a clear -ERR, and a line
// without end is cut off with a reply instead of being read for ever.
func TestLineLimits(t *testing.T) {
	user := func(total int, eol string) string { // a USER line of total octets
		return "USER " + strings.Repeat("a", total-5-len(eol)) + eol
	}
	cases := []struct {
		name   string
		send   []string
		want   []string
		closes bool // the session ends
	}{
		{"1024 with CRLF", []string{user(1024, "\r\n")}, []string{"+OK Send your password"}, false},
		{"1024 with LF", []string{user(1024, "\n")}, []string{"+OK Send your password"}, false},
		{"1025", []string{user(1025, "\r\n")}, []string{"-ERR Line too long"}, false},
		{"60000", []string{user(60000, "\r\n")}, []string{"-ERR Line too long"}, false},
		{"sasl 4094", []string{"AUTH PLAIN\r\n", strings.Repeat("A", 4094) + "\r\n"},
			[]string{"+ ", "-ERR [AUTH] Invalid base64 response"}, false},
		{"sasl 4097", []string{"AUTH PLAIN\r\n", strings.Repeat("A", 4095) + "\r\n"},
			[]string{"+ ", "-ERR [AUTH] SASL response too long"}, false},
		{"no line end", []string{strings.Repeat("A", maxDiscard+maxSASLLine+10)},
			[]string{"-ERR Line too long, closing connection", "<EOF>"}, true},
		{"sasl no line end", []string{"AUTH LOGIN\r\n", strings.Repeat("A", maxDiscard+maxSASLLine+10)},
			[]string{"+ VXNlcm5hbWU6", "-ERR Line too long, closing connection", "<EOF>"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			d := st.add("alice", fixture...)
			c := dial(t, startServer(t, newTestServer(st)))
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, s := range tc.send {
					// The server may close while this is being written.
					if _, err := io.WriteString(c.conn, s); err != nil {
						return
					}
				}
			}()
			for _, w := range tc.want {
				if got := c.line(); got != w {
					t.Fatalf("got %q, want %q", got, w)
				}
			}
			<-done
			if !tc.closes {
				c.login("alice", "secret")
				if r := c.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
					t.Fatalf("QUIT %q", r)
				}
			}
			waitFor(t, "lock released", func() bool { return !d.isLocked() })
		})
	}
}

// Failed logins go through the shared throttle: the delay grows across
// sessions from one address, and once it says so the session closes and
// later sessions are refused even with the right password.
func TestThrottleAcrossSessions(t *testing.T) {
	const base = 40 * time.Millisecond
	th := throttle.New(throttle.Options{BaseDelay: base, MaxDelay: time.Second, CloseAfter: 3})
	e := newEnv(t, testMessages, func(s *Server) { s.Throttle = th })
	fail := func(c *client, minDelay time.Duration) {
		t.Helper()
		c.cmd("USER alice")
		start := time.Now()
		if r := c.cmd("PASS wrong"); r != "-ERR [AUTH] Authentication failed" {
			t.Fatalf("PASS %q", r)
		}
		if d := time.Since(start); d < minDelay {
			t.Fatalf("failed login answered after %v, want at least %v", d, minDelay)
		}
	}
	c1 := dial(t, e.addr)
	fail(c1, base)
	c1.cmd("QUIT")
	c2 := dial(t, e.addr)
	fail(c2, 2*base) // the second failure from this address waits longer
	start := time.Now()
	if r := c2.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00nobody\x00x"))); r != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("AUTH %q", r)
	}
	if d := time.Since(start); d < 4*base {
		t.Fatalf("third failure answered after %v", d)
	}
	if r := c2.line(); r != "<EOF>" {
		t.Fatalf("session not closed by the throttle: %q", r)
	}
	c3 := dial(t, e.addr)
	c3.cmd("USER alice")
	if r := c3.cmd("PASS secret"); r != "-ERR [AUTH] Too many failed logins, try again later" {
		t.Fatalf("blocked address logged in: %q", r)
	}
	if r := c3.line(); r != "<EOF>" {
		t.Fatalf("blocked session not closed: %q", r)
	}
	e.waitUnlocked(t)
}

// TOP on a message without the blank line that ends the header: it is all
// header (RFC 5322 §3.5), sent whole and terminated, for any n.
func TestTopWithoutSeparator(t *testing.T) {
	st := newFakeStore()
	st.add("alice", fakeMsg{"1700000004.M5P5.host", "Subject: header only\nX: a\n.X: dot"})
	c := dial(t, startServer(t, newTestServer(st)))
	c.login("alice", "secret")
	for _, n := range []string{"0", "1", "10"} {
		if r := c.cmd("TOP 1 " + n); r != "+OK Top of message follows" {
			t.Fatalf("TOP 1 %s: %q", n, r)
		}
		if got, want := strings.Join(c.multi(), "|"), "Subject: header only|X: a|..X: dot"; got != want {
			t.Fatalf("TOP 1 %s: got %q, want %q", n, got, want)
		}
	}
	if r := c.cmd("NOOP"); r != "+OK" {
		t.Fatalf("NOOP after TOP %q", r)
	}
}

// One log line per session with user, messages retrieved and deleted,
// bytes and how it ended; a failed login is logged without the password.
func TestSessionLog(t *testing.T) {
	var logs testlog.Buffer
	st := newFakeStore()
	d := st.add("alice", fixture...)
	srv := newTestServer(st)
	srv.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	addr := startServer(t, srv)

	c := dial(t, addr)
	c.cmd("USER alice")
	c.cmd("PASS not-the-password")
	c.login("alice", "secret")
	c.cmd("RETR 1")
	c.multi()
	c.cmd("DELE 2")
	c.cmd("QUIT")
	waitFor(t, "session log", func() bool { return strings.Contains(logs.String(), "end=quit") })

	c = dial(t, addr)
	c.login("alice", "secret")
	c.cmd("DELE 1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no grace: cut the session off at once
	if err := srv.Shutdown(ctx); err != context.Canceled {
		t.Fatalf("Shutdown: %v", err)
	}
	waitFor(t, "lock released", func() bool { return !d.isLocked() })

	out := logs.String()
	for _, want := range []string{
		`msg="pop3 authentication failed" client=127.0.0.1 user=alice`,
		`msg="pop3 session" remote=127.0.0.1:`,
		`user=alice retrieved=1 deleted=1 bytes=46 `,
		`end=quit`,
		`user=alice retrieved=0 deleted=0 bytes=0 `,
		`end="server shutdown (no deletion)"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "not-the-password") || strings.Contains(out, "secret") {
		t.Errorf("password in the log:\n%s", out)
	}
	if n := len(d.ids()); n != len(fixture)-1 {
		t.Errorf("%d messages left, want %d", n, len(fixture)-1)
	}
}

// An idle timeout after DELE removes nothing and releases the lock
// (SPEC §5); the session log says so.
func TestIdleTimeoutAfterDele(t *testing.T) {
	var logs testlog.Buffer
	e := newEnv(t, testMessages, func(s *Server) {
		s.IdleTimeout = 200 * time.Millisecond
		s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	c := dial(t, e.addr)
	c.login("alice", "secret")
	if r := c.cmd("DELE 1"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("DELE %q", r)
	}
	if r := c.line(); r != "<EOF>" { // waits for the server to give up
		t.Fatalf("got %q, want the connection closed", r)
	}
	e.waitUnlocked(t)
	if n := e.count(t); n != len(testMessages) {
		t.Fatalf("%d messages left, want %d", n, len(testMessages))
	}
	waitFor(t, "log line", func() bool { return strings.Contains(logs.String(), `end="idle timeout (no deletion)"`) })
}

// A message removed by another program after login: RETR and TOP answer
// -ERR and the session goes on; DELE of it and QUIT still succeed.
func TestMessageVanished(t *testing.T) {
	st := newFakeStore()
	d := st.add("alice", fixture...)
	c := dial(t, startServer(t, newTestServer(st)))
	c.login("alice", "secret")
	st.mu.Lock()
	d.msgs = d.msgs[1:] // message 1 goes away behind the session's back
	st.mu.Unlock()
	for _, cmd := range []string{"RETR 1", "TOP 1 0"} {
		if r := c.cmd(cmd); r != "-ERR [SYS/TEMP] Message not available" {
			t.Fatalf("%s: %q", cmd, r)
		}
	}
	if r := c.cmd("LIST 2"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Fatalf("LIST 2 %q", r)
	}
	c.cmd("DELE 1")
	if r := c.cmd("QUIT"); r != "+OK Bye, 1 messages deleted" {
		t.Fatalf("QUIT %q", r)
	}
}

// A user store that cannot be read is a temporary failure, not a failed
// login: -ERR [SYS/TEMP], nothing counted by the throttle, the session
// goes on and can log in once the store is back.
func TestAuthBackendError(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	th := &fakeThrottle{closeAt: 1}
	st := newFakeStore()
	st.add("alice", fixture...)
	srv := newTestServer(st)
	srv.Throttle = th
	srv.Authenticate = func(ctx context.Context, name, password string) (string, error) {
		if broken.Load() {
			return "", errors.New("users: read users.json: input/output error")
		}
		return fakeAuth(ctx, name, password)
	}
	c := dial(t, startServer(t, srv))
	const want = "-ERR [SYS/TEMP] Authentication temporarily unavailable, try again later"
	c.cmd("USER alice")
	if r := c.cmd("PASS secret"); r != want {
		t.Fatalf("PASS %q", r)
	}
	if r := c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))); r != want {
		t.Fatalf("AUTH %q", r)
	}
	th.mu.Lock()
	n := th.failures
	th.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d failures counted by the throttle", n)
	}
	broken.Store(false)
	c.login("alice", "secret")
	c.cmd("QUIT")
}

// STAT, LIST and RETR's +OK take sizes from the file name (,W= as buzon
// and Dovecot write it) without reading the body (SPEC §5); UIDL is the
// unique name before ,S= and :2, wherever the file lies.
func TestSizesFromNames(t *testing.T) {
	e := newEnv(t, nil, nil)
	files := map[string]string{
		"new/1700000000.M1P1.host,S=8,W=999":      "Subject\n",
		"cur/1700000001.M2P2.host,S=8,W=777:2,S":  "Subject\n",
		"cur/1700000002.M3P3.host,S=9,W=12345:2,": "Subject!\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(e.md.Dir(), name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, e.addr)
	c.login("alice", "secret")
	if r := c.cmd("STAT"); r != "+OK 3 14121" {
		t.Fatalf("STAT %q", r)
	}
	c.cmd("LIST")
	if got := strings.Join(c.multi(), "|"); got != "1 999|2 777|3 12345" {
		t.Fatalf("LIST %q", got)
	}
	c.cmd("UIDL")
	if got := strings.Join(c.multi(), "|"); got != "1 1700000000.M1P1.host|2 1700000001.M2P2.host|3 1700000002.M3P3.host" {
		t.Fatalf("UIDL %q", got)
	}
	c.cmd("QUIT")
}
