package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"os"
	"path/filepath"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/buzon-mail/buzon/maildir"
)

// testMessages cover the pitfalls: dot lines, bare-LF dots, no final
// newline, a lone CR at the end.
var testMessages = []string{
	"From: a@example.test\r\nSubject: first\r\n\r\nHello.\r\n.leading dot\r\n..two\r\n",
	"From: b@example.test\nSubject: second\n\nbare LF lines\n.dot after LF\n",
	"From: c@example.test\r\nSubject: third\r\n\r\nno newline at the end",
	"From: d@example.test\r\nSubject: fourth\r\n\r\nends in a lone CR\r",
}

type env struct {
	srv   *Server
	store *maildir.Store
	md    *maildir.Maildir
	addr  string
}

// newEnv serves a real Maildir store with alice's messages.
func newEnv(t testing.TB, msgs []string, tune func(*Server)) *env {
	t.Helper()
	store, err := maildir.New(t.TempDir(), maildir.Options{Hostname: "pop.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create("alice"); err != nil {
		t.Fatal(err)
	}
	fill(t, store, msgs)
	md, err := store.Maildir("alice")
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(MaildirStore(store))
	if tune != nil {
		tune(srv)
	}
	return &env{srv: srv, store: store, md: md, addr: startServer(t, srv)}
}

func fill(t testing.TB, store *maildir.Store, msgs []string) {
	t.Helper()
	b, err := store.Batch("alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := b.Add(strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
		// Distinct delivery times keep "oldest first" well defined.
		time.Sleep(time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) count(t testing.TB) int {
	t.Helper()
	l, err := e.md.List()
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func (e *env) waitUnlocked(t testing.TB) {
	t.Helper()
	waitFor(t, "maildrop lock released", func() bool { return !e.md.Locked() })
}

// retr reads a RETR reply and undoes the framing.
func (c *client) retr(n int) (string, string) {
	c.t.Helper()
	first := c.cmd(fmt.Sprintf("RETR %d", n))
	if !strings.HasPrefix(first, "+OK") {
		c.t.Fatalf("RETR %d: %q", n, first)
	}
	var b strings.Builder
	for _, l := range c.multi() {
		b.WriteString(strings.TrimPrefix(l, ".")) // only ".." lines start with "."
		b.WriteString("\r\n")
	}
	return first, b.String()
}

// wantCRLF is the message as RETR must deliver it, after un-stuffing.
func wantCRLF(m string) string {
	s := crlfForm(m)
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func TestThunderbirdSequence(t *testing.T) {
	e := newEnv(t, testMessages, nil)
	c := dial(t, e.addr)
	c.send("CAPA\r\n")
	c.line()
	caps := c.multi()
	if !strings.Contains(strings.Join(caps, "|"), "SASL PLAIN LOGIN") {
		t.Fatalf("CAPA %q", caps)
	}
	if r := c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("AUTH: %q", r)
	}
	if r := c.cmd("STAT"); !strings.HasPrefix(r, "+OK 4 ") {
		t.Fatalf("STAT %q", r)
	}
	c.cmd("LIST")
	list := c.multi()
	c.cmd("UIDL")
	uidl := c.multi()
	if len(list) != 4 || len(uidl) != 4 {
		t.Fatalf("LIST %q UIDL %q", list, uidl)
	}
	for i, m := range testMessages {
		first, got := c.retr(i + 1)
		if got != wantCRLF(m) {
			t.Errorf("RETR %d = %q, want %q", i+1, got, wantCRLF(m))
		}
		size := int64(len(crlfForm(m)))
		if first != fmt.Sprintf("+OK %d octets", size) || list[i] != fmt.Sprintf("%d %d", i+1, size) {
			t.Errorf("message %d: RETR %q, LIST %q, size %d", i+1, first, list[i], size)
		}
	}
	for _, n := range []string{"1", "3"} {
		if r := c.cmd("DELE " + n); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("DELE: %q", r)
		}
	}
	if r := c.cmd("QUIT"); r != "+OK Bye, 2 messages deleted" {
		t.Fatalf("QUIT %q", r)
	}
	e.waitUnlocked(t)

	c = dial(t, e.addr)
	c.login("alice", "secret")
	c.cmd("UIDL")
	again := c.multi()
	want := []string{"1 " + strings.Fields(uidl[1])[1], "2 " + strings.Fields(uidl[3])[1]}
	if strings.Join(again, "|") != strings.Join(want, "|") {
		t.Fatalf("UIDL after reconnect %q, want %q", again, want)
	}
	_, got := c.retr(1)
	if got != wantCRLF(testMessages[1]) {
		t.Fatalf("kept message changed: %q", got)
	}
	c.cmd("QUIT")
}

func TestDroppedConnectionRemovesNothing(t *testing.T) {
	e := newEnv(t, testMessages, nil)
	c := dial(t, e.addr)
	c.login("alice", "secret")
	for i := 1; i <= 4; i++ {
		c.cmd(fmt.Sprintf("DELE %d", i))
	}
	c.conn.Close()
	e.waitUnlocked(t)
	if n := e.count(t); n != 4 {
		t.Fatalf("%d messages left, want 4", n)
	}
}

func TestInUse(t *testing.T) {
	e := newEnv(t, testMessages, nil)
	c1 := dial(t, e.addr)
	c1.login("alice", "secret")
	c2 := dial(t, e.addr)
	c2.cmd("USER alice")
	if r := c2.cmd("PASS secret"); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Fatalf("second login: %q", r)
	}
	// Another process's lock (a second store on the same directory) is
	// seen too.
	other, err := maildir.New(e.store.Root(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	omd, _ := other.Maildir("alice")
	if _, err := omd.Lock(); err != maildir.ErrLocked {
		t.Fatalf("lock while a session holds it: %v", err)
	}
	c1.cmd("QUIT")
	e.waitUnlocked(t)
	if r := c2.cmd("PASS secret"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("PASS without USER: %q", r)
	}
	c2.cmd("USER alice")
	if r := c2.cmd("PASS secret"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("login after release: %q", r)
	}
}

func TestMessageMovedToCurStillServed(t *testing.T) {
	// A message moved to cur/ with flags by another program is still found.
	e := newEnv(t, testMessages[:1], nil)
	l, _ := e.md.List()
	entries, _ := filepathGlob(e.md.Dir() + "/new/*")
	for _, p := range entries {
		if err := rename(p, strings.Replace(p, "/new/", "/cur/", 1)+":2,S"); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, e.addr)
	c.login("alice", "secret")
	if r := c.cmd("UIDL 1"); r != "+OK 1 "+UIDL(l[0].ID) {
		t.Fatalf("UIDL after move %q", r)
	}
	if _, got := c.retr(1); got != wantCRLF(testMessages[0]) {
		t.Fatalf("RETR after move %q", got)
	}
	c.cmd("DELE 1")
	c.cmd("QUIT")
	e.waitUnlocked(t)
	if n := e.count(t); n != 0 {
		t.Fatalf("%d left", n)
	}
}

func TestIdleTimeoutCutsOffStalledReader(t *testing.T) {
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 99)+"\n", 80000) // 8 MB
	e := newEnv(t, []string{big}, func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	io.WriteString(c, "USER alice\r\nPASS secret\r\nRETR 1\r\n")
	// Never read: the server's write deadline must cut the session off
	// and release the lock.
	e.waitUnlocked(t)
	if n := e.count(t); n != 1 {
		t.Fatal("message lost")
	}
}

func TestClientVanishesMidRetr(t *testing.T) {
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("y", 99)+"\n", 20000)
	e := newEnv(t, []string{big}, nil)
	c := dial(t, e.addr)
	c.login("alice", "secret")
	c.cmd("DELE 1")
	c.cmd("RSET")
	c.send("RETR 1\r\n")
	if _, err := io.ReadFull(c.r, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	e.waitUnlocked(t)
	if n := e.count(t); n != 1 {
		t.Fatal("message lost")
	}
}

func TestLoginTimeout(t *testing.T) {
	e := newEnv(t, nil, func(s *Server) { s.LoginTimeout = 200 * time.Millisecond })
	c := dial(t, e.addr)
	c.cmd("USER alice") // activity does not extend the login deadline
	if got := c.line(); got != "<EOF>" {
		t.Fatalf("got %q, want the connection closed", got)
	}
}

func TestShutdownAppliesNoDeletion(t *testing.T) {
	e := newEnv(t, testMessages, nil)
	c := dial(t, e.addr)
	c.login("alice", "secret")
	c.cmd("DELE 1")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := c.line(); got != "<EOF>" {
		t.Fatalf("session not closed: %q", got)
	}
	e.waitUnlocked(t)
	if n := e.count(t); n != 4 {
		t.Fatalf("%d messages left, want 4", n)
	}
}

func TestShutdownWaitsForSessions(t *testing.T) {
	e := newEnv(t, testMessages, nil)
	c := dial(t, e.addr)
	c.login("alice", "secret")
	c.cmd("DELE 2")
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	// New connections are refused once Shutdown started.
	waitFor(t, "listener closed", func() bool {
		x, err := net.Dial("tcp", e.addr)
		if err == nil {
			x.Close()
		}
		return err != nil
	})
	if r := c.cmd("QUIT"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("QUIT %q", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := e.count(t); n != 3 {
		t.Fatalf("%d left, want 3", n)
	}
}

func TestFailedLoginThrottled(t *testing.T) {
	th := &fakeThrottle{closeAt: 3}
	e := newEnv(t, nil, func(s *Server) { s.Throttle = th })
	c := dial(t, e.addr)
	for i := 0; i < 2; i++ {
		c.cmd("USER alice")
		if r := c.cmd("PASS wrong"); r != "-ERR [AUTH] Authentication failed" {
			t.Fatalf("%q", r)
		}
	}
	c.cmd("USER nobody")
	if r := c.cmd("PASS wrong"); r != "-ERR [AUTH] Authentication failed" {
		t.Fatalf("%q", r)
	}
	if r := c.line(); r != "<EOF>" {
		t.Fatalf("not closed after throttle said so: %q", r)
	}
}

func TestRemoveFailureReported(t *testing.T) {
	st := newFakeStore()
	d := st.add("alice", fixture...)
	d.failRm[fixture[1].id] = true
	cnt := &fakeCounters{}
	srv := newTestServer(st)
	srv.Counters = cnt
	c := dial(t, startServer(t, srv))
	c.login("alice", "secret")
	c.cmd("RETR 1")
	c.multi()
	c.cmd("DELE 1")
	c.cmd("DELE 2")
	if r := c.cmd("QUIT"); r != "-ERR [SYS/TEMP] Some deleted messages not removed" {
		t.Fatalf("QUIT %q", r)
	}
	waitFor(t, "unlock", func() bool { return !d.isLocked() })
	if got := d.removed; len(got) != 1 || got[0] != fixture[0].id {
		t.Fatalf("removed %q", got)
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	if cnt.retrieved != 1 || cnt.deleted != 1 {
		t.Fatalf("counters %+v", cnt)
	}
}

func TestRefuse(t *testing.T) {
	for why, want := range map[accounting.Reason]string{
		accounting.LimitReached: "-ERR [SYS/TEMP] Too many connections, try again later\r\n",
		accounting.Paused:       "-ERR [SYS/TEMP] Service paused, try again later\r\n",
	} {
		var b bytes.Buffer
		Refuse(&b, why)
		if b.String() != want {
			t.Errorf("%v: %q", why, b.String())
		}
	}
}

func TestSTLS(t *testing.T) {
	cert := testcert.New(t)
	e := newEnv(t, testMessages, func(s *Server) { s.TLSConfig = cert.Server; s.TrustLoopback = false })
	c := dial(t, e.addr)
	c.send("CAPA\r\n")
	c.line()
	caps := strings.Join(c.multi(), "|")
	if !strings.Contains(caps, "STLS") || strings.Contains(caps, "USER") || strings.Contains(caps, "SASL") {
		t.Fatalf("CAPA without TLS %q", caps)
	}
	if r := c.cmd("USER alice"); !strings.HasPrefix(r, "-ERR [AUTH] Plaintext") {
		t.Fatalf("USER without TLS: %q", r)
	}
	if r := c.cmd("STLS"); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS %q", r)
	}
	tc := tls.Client(c.conn, cert.Client)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.send("CAPA\r\n")
	c.line()
	caps = strings.Join(c.multi(), "|")
	if strings.Contains(caps, "STLS") || !strings.Contains(caps, "USER") || !strings.Contains(caps, "SASL PLAIN LOGIN") {
		t.Fatalf("CAPA after TLS %q", caps)
	}
	if r := c.cmd("STLS"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("second STLS %q", r)
	}
	c.login("alice", "secret")
	if _, got := c.retr(2); got != wantCRLF(testMessages[1]) {
		t.Fatalf("RETR over TLS %q", got)
	}
	c.cmd("QUIT")
}

func TestSTLSInjection(t *testing.T) {
	cert := testcert.New(t)
	e := newEnv(t, testMessages, func(s *Server) { s.TLSConfig = cert.Server })
	c := dial(t, e.addr)
	c.send("STLS\r\nCAPA\r\n")
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS %q", r)
	}
	// The server must close rather than start TLS and run the CAPA.
	if r := c.line(); r != "<EOF>" {
		t.Fatalf("got %q, want the connection closed", r)
	}
	tc := tls.Client(c.conn, cert.Client)
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded after injected data")
	}
}

func TestImplicitTLS(t *testing.T) {
	cert := testcert.New(t)
	store, _ := maildir.New(t.TempDir(), maildir.Options{})
	store.Create("alice")
	fill(t, store, testMessages)
	srv := newTestServer(MaildirStore(store))
	srv.TrustLoopback = false
	srv.TLSConfig = cert.Server
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(l, cert.Server))
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	conn, err := tls.Dial("tcp", l.Addr().String(), cert.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.line()
	c.send("CAPA\r\n")
	c.line()
	if caps := strings.Join(c.multi(), "|"); strings.Contains(caps, "STLS") || !strings.Contains(caps, "USER") {
		t.Fatalf("CAPA on POP3S %q", caps)
	}
	c.login("alice", "secret")
	if r := c.cmd("STAT"); !strings.HasPrefix(r, "+OK 4 ") {
		t.Fatalf("STAT %q", r)
	}
	c.cmd("QUIT")
}

// FuzzSession runs random command sequences against a temporary Maildir:
// no panic, no removal of a message never marked, no lock left held.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 1, 4, 10, 1, 13}, "")
	f.Add([]byte{0, 1, 10, 2, 10, 2, 11, 13}, "RETR 1")
	f.Add([]byte{3, 5, 6, 7, 8, 9, 12, 14, 15}, "TOP 1 0")
	f.Add([]byte{0, 1, 10, 1, 10, 3, 15, 13}, "\x00garbage")
	f.Fuzz(func(t *testing.T, ops []byte, raw string) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		store, err := maildir.New(t.TempDir(), maildir.Options{Hostname: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		store.Create("alice")
		fill(t, store, testMessages[:3])
		md, _ := store.Maildir("alice")
		before, _ := md.List()

		var script strings.Builder
		marked := map[int]bool{}
		quit := false
		for i := 0; i < len(ops); i++ {
			arg := 0
			if i+1 < len(ops) {
				arg = int(ops[i+1] % 5)
			}
			switch ops[i] % 16 {
			case 0:
				script.WriteString("USER alice\r\n")
			case 1:
				script.WriteString("PASS secret\r\n")
			case 2:
				script.WriteString("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret")) + "\r\n")
			case 3:
				script.WriteString("STAT\r\n")
			case 4:
				script.WriteString("LIST\r\n")
			case 5:
				fmt.Fprintf(&script, "LIST %d\r\n", arg)
			case 6:
				fmt.Fprintf(&script, "UIDL %d\r\n", arg)
			case 7:
				fmt.Fprintf(&script, "RETR %d\r\n", arg)
			case 8:
				fmt.Fprintf(&script, "TOP %d %d\r\n", arg, arg)
			case 9:
				script.WriteString("UIDL\r\n")
			case 10:
				fmt.Fprintf(&script, "DELE %d\r\n", arg)
				marked[arg] = true
			case 11:
				script.WriteString("RSET\r\n")
			case 12:
				script.WriteString("NOOP\r\n")
			case 13:
				script.WriteString("QUIT\r\n")
				quit = true
			case 14:
				script.WriteString("CAPA\r\n")
			case 15:
				script.WriteString(raw + "\r\n")
				if strings.Contains(strings.ToUpper(raw), "QUIT") {
					quit = true
				}
				if strings.Contains(strings.ToUpper(raw), "DELE") {
					for n := 1; n <= 3; n++ {
						marked[n] = true
					}
				}
			}
		}
		srv := newTestServer(MaildirStore(store))
		srv.AllowInsecure = true
		// The client sends the whole script and then vanishes: the session
		// reads EOF after the last line, exactly a dropped connection when
		// the script did not QUIT. No timing is involved.
		s := srv.newSession(&scriptConn{r: strings.NewReader(script.String())})
		s.serve(context.Background())
		if md.Locked() {
			t.Fatal("lock left held")
		}
		after, _ := md.List()
		kept := map[string]bool{}
		for _, m := range after {
			kept[m.ID] = true
		}
		for i, m := range before {
			if !kept[m.ID] && (!quit || !marked[i+1]) {
				t.Fatalf("message %d removed without DELE+QUIT (script %q)", i+1, script.String())
			}
		}
	})
}

// scriptConn is a client that sends a fixed script, ignores every reply
// and disconnects at the end of the script.
type scriptConn struct{ r *strings.Reader }

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkListUIDL50k measures LIST and UIDL on a 50,000-message maildrop
// (sizes and ids come from the file names; no message is read).
func BenchmarkListUIDL50k(b *testing.B) {
	store, err := maildir.New(b.TempDir(), maildir.Options{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	store.Create("alice")
	bt, err := store.Batch("alice")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 50000; i++ {
		if _, err := bt.Add(strings.NewReader(fmt.Sprintf("Subject: %d\n\nbody\n", i))); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Close(); err != nil {
		b.Fatal(err)
	}
	srv := newTestServer(MaildirStore(store))
	c := dial(b, startServer(b, srv))
	start := time.Now()
	c.login("alice", "secret")
	b.Logf("login with 50,000 messages (lock + List): %v", time.Since(start))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, cmd := range []string{"LIST", "UIDL"} {
			c.cmd(cmd)
			if n := len(c.multi()); n != 50000 {
				b.Fatalf("%s: %d lines", cmd, n)
			}
		}
	}
	b.StopTimer()
	c.cmd("QUIT")
}

var (
	filepathGlob = filepath.Glob
	rename       = os.Rename
)
