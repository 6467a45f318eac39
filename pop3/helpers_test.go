package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// fakeStore is an in-memory Mailboxes for dialog tests: messages per user
// in order, a lock flag, a record of removals.
type fakeStore struct {
	mu    sync.Mutex
	drops map[string]*fakeDrop
}

type fakeMsg struct {
	id   string
	data string
}

type fakeDrop struct {
	st      *fakeStore
	msgs    []fakeMsg
	locked  bool
	removed []string
	failRm  map[string]bool
	// syncs records, for each Sync, how many removals preceded it.
	syncs    []int
	failSync bool
}

func newFakeStore() *fakeStore { return &fakeStore{drops: map[string]*fakeDrop{}} }

func (f *fakeStore) add(user string, msgs ...fakeMsg) *fakeDrop {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drops[user]
	if d == nil {
		d = &fakeDrop{st: f, failRm: map[string]bool{}}
		f.drops[user] = d
	}
	d.msgs = append(d.msgs, msgs...)
	return d
}

func (f *fakeStore) Maildrop(user string) (Maildrop, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.drops[user]
	if d == nil {
		d = &fakeDrop{st: f, failRm: map[string]bool{}}
		f.drops[user] = d
	}
	return d, nil
}

func (d *fakeDrop) isLocked() bool {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	return d.locked
}

func (d *fakeDrop) ids() []string {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	var ids []string
	for _, m := range d.msgs {
		ids = append(ids, m.id)
	}
	return ids
}

type fakeLock struct {
	d    *fakeDrop
	once sync.Once
}

func (l *fakeLock) Release() error {
	l.once.Do(func() {
		l.d.st.mu.Lock()
		l.d.locked = false
		l.d.st.mu.Unlock()
	})
	return nil
}

func (d *fakeDrop) Lock() (Releaser, error) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	if d.locked {
		return nil, maildir.ErrLocked
	}
	d.locked = true
	return &fakeLock{d: d}, nil
}

func (d *fakeDrop) List() ([]maildir.Message, error) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	var out []maildir.Message
	for _, m := range d.msgs {
		n, _ := maildir.CRLFSize(strings.NewReader(m.data))
		out = append(out, maildir.Message{ID: m.id, Size: n})
	}
	return out, nil
}

func (d *fakeDrop) Open(id string) (io.ReadCloser, error) {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	for _, m := range d.msgs {
		if m.id == id {
			return io.NopCloser(strings.NewReader(m.data)), nil
		}
	}
	return nil, maildir.ErrNotFound
}

func (d *fakeDrop) Sync() error {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	d.syncs = append(d.syncs, len(d.removed))
	if d.failSync {
		return errors.New("injected sync failure")
	}
	return nil
}

func (d *fakeDrop) syncLog() []int {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	return slices.Clone(d.syncs)
}

func (d *fakeDrop) Remove(id string) error {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	if d.failRm[id] {
		return errors.New("injected failure")
	}
	for i, m := range d.msgs {
		if m.id == id {
			d.msgs = slices.Delete(d.msgs, i, i+1)
			d.removed = append(d.removed, id)
			return nil
		}
	}
	return maildir.ErrNotFound
}

// fakeAuth knows alice/secret and bob/hunter2 (names case-insensitive).
func fakeAuth(ctx context.Context, name, password string) (string, error) {
	pw := map[string]string{"alice": "secret", "bob": "hunter2"}
	n := strings.ToLower(name)
	if p, ok := pw[n]; ok && p == password {
		return n, nil
	}
	return "", fmt.Errorf("check %s: %w", n, users.ErrAuthFailed)
}

type fakeThrottle struct {
	mu       sync.Mutex
	failures int
	closeAt  int
}

func (f *fakeThrottle) Failure(ctx context.Context, addr net.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	return f.closeAt > 0 && f.failures >= f.closeAt
}
func (f *fakeThrottle) Blocked(addr net.Addr) bool { return false }
func (f *fakeThrottle) Success(addr net.Addr)      {}

type fakeCounters struct {
	mu                 sync.Mutex
	retrieved, deleted int64
}

func (c *fakeCounters) AddRetrieved(n int64) { c.mu.Lock(); c.retrieved += n; c.mu.Unlock() }
func (c *fakeCounters) AddDeleted(n int64)   { c.mu.Lock(); c.deleted += n; c.mu.Unlock() }

// startServer serves srv on a loopback port until the test ends.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	return serveUntilCleanup(t, srv, nil)
}

// serveUntilCleanup listens on a loopback port (with implicit TLS when cfg
// is set), serves srv, and shuts it down when the test ends.
func serveUntilCleanup(t testing.TB, srv *Server, cfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served net.Listener = l
	if cfg != nil {
		served = tls.NewListener(l, cfg)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

func newTestServer(st Mailboxes) *Server {
	return &Server{
		Hostname:      "pop.test",
		Authenticate:  fakeAuth,
		Mail:          st,
		TrustLoopback: true,
		IdleTimeout:   5 * time.Second,
		LoginTimeout:  5 * time.Second,
	}
}

// client is a raw protocol client.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return greeted(t, c)
}

// greeted wraps a fresh connection (closed when the test ends) and reads
// the +OK greeting.
func greeted(t testing.TB, conn net.Conn) *client {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.line(); !strings.HasPrefix(g, "+OK ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one reply line without CRLF; "<EOF>" when the server closed.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		if l == "" && (errors.Is(err, io.EOF) || isReset(err)) {
			return "<EOF>"
		}
		c.t.Fatalf("read: %v (partial %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// cmd sends one line and returns the first reply line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.line()
}

// multi reads a multi-line body up to "." (excluded), lines as sent.
func (c *client) multi() []string {
	c.t.Helper()
	var out []string
	for {
		l := c.line()
		if l == "." {
			return out
		}
		if l == "<EOF>" {
			c.t.Fatalf("EOF inside multi-line reply after %q", out)
		}
		out = append(out, l)
	}
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	if r := c.cmd("USER " + user); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("USER: %q", r)
	}
	if r := c.cmd("PASS " + pass); !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("PASS: %q", r)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startTLSServer serves srv with implicit TLS (POP3S) until the test ends.
func startTLSServer(t testing.TB, srv *Server, cfg *tls.Config) string {
	t.Helper()
	return serveUntilCleanup(t, srv, cfg)
}

// dialTLS connects to a POP3S address and reads the greeting.
func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	d := &net.Dialer{Deadline: time.Now().Add(10 * time.Second)}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return greeted(t, conn)
}

// startTLS sends STLS and does the client side of the handshake.
func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	if r := c.cmd("STLS"); r != "+OK Begin TLS negotiation" {
		c.t.Fatalf("STLS %q", r)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}
