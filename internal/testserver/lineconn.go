package testserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// ioTimeout bounds every read and write of a LineConn, so a server that
// stops answering fails the test instead of hanging it.
const ioTimeout = 10 * time.Second

// LineConn is a small line-protocol client for scripted SMTP, POP3 and MGMT
// dialogs against a running server. Every failure ends the test.
type LineConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// DialLine connects to addr (5 s dial timeout); the connection is closed at
// test end.
func DialLine(t testing.TB, addr string) *LineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &LineConn{t: t, c: c, r: bufio.NewReader(c)}
}

// Close closes the connection, as a client vanishing would.
func (l *LineConn) Close() error { return l.c.Close() }

// Line reads one line (CRLF stripped).
func (l *LineConn) Line() string {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(ioTimeout))
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// Reply reads a reply and returns its last line: an SMTP multi-line reply
// continues while the fourth character is "-" (RFC 5321 section 4.2.1).
// POP3 and MGMT status lines never have "-" there, so for them it is one line.
func (l *LineConn) Reply() string {
	l.t.Helper()
	for {
		s := l.Line()
		if len(s) < 4 || s[3] != '-' {
			return s
		}
	}
}

// Send writes s followed by CRLF.
func (l *LineConn) Send(s string) {
	l.t.Helper()
	_ = l.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := l.c.Write([]byte(s + "\r\n")); err != nil {
		l.t.Fatalf("write %q: %v", s, err)
	}
}

// Expect reads a reply and checks that its last line starts with want.
func (l *LineConn) Expect(want string) string {
	l.t.Helper()
	got := l.Reply()
	if !strings.HasPrefix(got, want) {
		l.t.Fatalf("got %q, want %q", got, want)
	}
	return got
}

// Cmd sends s and checks that the reply starts with want (empty want
// accepts any reply); it returns the reply's last line.
func (l *LineConn) Cmd(s, want string) string {
	l.t.Helper()
	l.Send(s)
	got := l.Reply()
	if !strings.HasPrefix(got, want) {
		l.t.Fatalf("%q: got %q, want %q", s, got, want)
	}
	return got
}

// DotLines reads data lines up to the terminating "." line, which it
// drops. Lines are returned as sent: dot-stuffing is not undone.
func (l *LineConn) DotLines() []string {
	l.t.Helper()
	var out []string
	for {
		s := l.Line()
		if s == "." {
			return out
		}
		out = append(out, s)
	}
}

// ClosedByPeer reports whether the server closes the connection within the
// given time; lines it sends before closing are skipped.
func (l *LineConn) ClosedByPeer(within time.Duration) bool {
	_ = l.c.SetReadDeadline(time.Now().Add(within))
	for {
		if _, err := l.r.ReadString('\n'); err != nil {
			ne, ok := err.(net.Error)
			return !ok || !ne.Timeout()
		}
	}
}

// MGMTLogin opens an MGMT session logged in as admin.
func (s *Server) MGMTLogin(t testing.TB) *LineConn {
	t.Helper()
	c := DialLine(t, s.MGMT)
	c.Line() // greeting
	c.Cmd("USER admin", "+OK USER")
	c.Cmd("PASS "+s.AdminPassword, "+OK PASS")
	return c
}

// MGMTReply sends an MGMT command, requires +OK and returns its data lines
// (without the final ".").
func MGMTReply(t testing.TB, c *LineConn, cmd string) []string {
	t.Helper()
	c.Cmd(cmd, "+OK")
	return c.DotLines()
}

// MGMTStatus returns the STATUS reply as a key → value map.
func MGMTStatus(t testing.TB, c *LineConn) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range MGMTReply(t, c, "STATUS") {
		k, v, _ := strings.Cut(s, ": ")
		m[k] = v
	}
	return m
}
