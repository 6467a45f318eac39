package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/buzon-mail/buzon/internal/testlog"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// fakeUsers is a small in-memory user store.
type fakeUsers struct {
	mu   sync.Mutex
	pw   map[string]string
	fail error // when set, every Authenticate returns it (a broken store)
}

func (f *fakeUsers) Authenticate(_ context.Context, name, password string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return users.User{}, f.fail
	}
	name = strings.ToLower(name)
	if p, ok := f.pw[name]; ok && p == password {
		return users.User{Name: name}, nil
	}
	return users.User{}, users.ErrAuthFailed
}

func (f *fakeUsers) Lookup(name string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pw[name]; ok {
		return users.User{Name: name}, nil
	}
	return users.User{}, users.ErrNotFound
}

// dirStore is a minimal Maildir-like store: tmp/ then rename into new/.
// fail injects an error at one step, with a system error carrying an
// internal path that must never reach a client.
type dirStore struct {
	root string
	fail string // "", "begin", "write", "commit"
	err  error
	free uint64
}

type dirDelivery struct {
	s     *dirStore
	users []string
	f     *os.File
	name  string
	done  bool
}

var seq atomic.Int64

func (s *dirStore) Begin(us ...string) (Delivery, error) {
	if s.fail == "begin" {
		return nil, s.err
	}
	for _, u := range us {
		for _, d := range []string{"tmp", "new"} {
			if err := os.MkdirAll(filepath.Join(s.root, u, d), 0o700); err != nil {
				return nil, err
			}
		}
	}
	name := fmt.Sprintf("%d.%d", time.Now().UnixNano(), seq.Add(1))
	f, err := os.Create(filepath.Join(s.root, us[0], "tmp", name))
	if err != nil {
		return nil, err
	}
	return &dirDelivery{s: s, users: us, f: f, name: name}, nil
}

func (s *dirStore) FreeBytes() (uint64, error) {
	if s.free != 0 {
		return s.free, nil
	}
	return 1 << 40, nil
}

func (d *dirDelivery) Write(p []byte) (int, error) {
	if d.s.fail == "write" {
		return 0, d.s.err
	}
	return d.f.Write(p)
}

func (d *dirDelivery) Commit() ([]string, error) {
	if d.s.fail == "commit" {
		return nil, d.s.err
	}
	if err := d.f.Close(); err != nil {
		return nil, err
	}
	tmp := filepath.Join(d.s.root, d.users[0], "tmp", d.name)
	for _, u := range d.users {
		if err := os.Link(tmp, filepath.Join(d.s.root, u, "new", d.name)); err != nil {
			return nil, err
		}
	}
	d.done = true
	return nil, os.Remove(tmp)
}

func (d *dirDelivery) Abort() error {
	if d.done {
		return nil
	}
	d.f.Close()
	return os.Remove(filepath.Join(d.s.root, d.users[0], "tmp", d.name))
}

// fakeThrottle closes after `after` failures, without delay.
type fakeThrottle struct {
	mu       sync.Mutex
	failures int
	after    int
}

func (f *fakeThrottle) Failure(context.Context, net.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	return f.after > 0 && f.failures >= f.after
}
func (f *fakeThrottle) Blocked(net.Addr) bool { return false }
func (f *fakeThrottle) Success(net.Addr)      {}

type counters struct{ accepted, delivered atomic.Int64 }

func (c *counters) AddAccepted(n int64)  { c.accepted.Add(n) }
func (c *counters) AddDelivered(n int64) { c.delivered.Add(n) }

type harness struct {
	srv                 *Server
	mx, sub, tlsAddr    string
	store               *dirStore
	users               *fakeUsers
	throttle            *fakeThrottle
	counters            *counters
	logs                *testlog.Buffer
	cert                *testcert.Cert
	transform           atomic.Bool
	mailRoot, spoolRoot string
}

// start runs a Server on loopback with port-25, submission and
// implicit-TLS listeners, backed by the real user store and Maildir store
// under t.TempDir(); mutate may change the options first.
func start(t testing.TB, mutate func(*Options)) *harness {
	t.Helper()
	return startStores(t, false, mutate)
}

// startFake is start with the in-memory users and the fault-injecting
// dirStore (h.store) instead of the real stores.
func startFake(t testing.TB, mutate func(*Options)) *harness {
	t.Helper()
	return startStores(t, true, mutate)
}

func startStores(t testing.TB, fake bool, mutate func(*Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{
		users:    &fakeUsers{pw: map[string]string{"alice": "alicepw", "bob": "bobpw", "admin": "adminpw"}},
		throttle: &fakeThrottle{after: 10},
		counters: &counters{},
		logs:     &testlog.Buffer{},
		cert:     testcert.New(t),
	}
	h.mailRoot = filepath.Join(dir, "mail")
	h.spoolRoot = filepath.Join(dir, "spool")
	os.MkdirAll(h.spoolRoot, 0o700)
	h.store = &dirStore{root: h.mailRoot}
	var (
		us    Users = h.users
		store Store = h.store
	)
	if !fake {
		rs, err := users.Open(dir, users.Options{BcryptCost: bcrypt.MinCost})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		for name, pw := range h.users.pw {
			if err := rs.Add(name, pw, name == "admin"); err != nil {
				t.Fatal(err)
			}
		}
		ms, err := maildir.New(h.mailRoot, maildir.Options{Hostname: "mx.test"})
		if err != nil {
			t.Fatal(err)
		}
		us, store = rs, MaildirStore(ms)
	}
	opts := Options{
		Hostname:        "mx.test",
		MaxMessageBytes: 1 << 20,
		MaxRecipients:   5,
		MaxLineLength:   2000,
		TrustLoopback:   true,
		TLS:             h.cert.Server,
		SpoolDir:        h.spoolRoot,
		TransformEnabled: func() bool {
			return h.transform.Load()
		},
		TransformMaxConcurrent: 2,
		Reloadable: Reloadable{
			Domains:          []string{"example.org", "Example.NET"},
			Aliases:          map[string][]string{"postmaster": {"admin"}, "team": {"alice", "bob"}},
			IdleTimeout:      5 * time.Second,
			TransformTimeout: 5 * time.Second,
		},
		Users:    us,
		Store:    store,
		Throttle: h.throttle,
		Counters: h.counters,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	listen := func(serve func(net.Listener) error) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go serve(l)
		return l.Addr().String()
	}
	h.mx = listen(srv.Serve)
	h.sub = listen(srv.ServeSubmission)
	if opts.TLS != nil {
		// As `buzon serve` does: a tls.NewListener, which ServeTLS
		// takes apart to put its idle deadlines under TLS.
		h.tlsAddr = listen(func(l net.Listener) error { return srv.ServeTLS(tls.NewListener(l, opts.TLS)) })
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	return h
}

// messages returns the files in the user's new/, normalised to LF, sorted
// by name.
func (h *harness) messages(t *testing.T, user string) []string {
	t.Helper()
	dir := filepath.Join(h.mailRoot, user, "new")
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.ReplaceAll(string(b), "\r\n", "\n"))
	}
	return out
}

// tmpFiles counts files left in any tmp/.
func (h *harness) tmpFiles(t *testing.T) int {
	t.Helper()
	n := 0
	filepath.WalkDir(h.mailRoot, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(p)) == "tmp" {
			n++
		}
		return nil
	})
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialog is a scripted client over a raw connection.
type dialog struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *dialog {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	return greeted(t, c, err)
}

func dialTLS(t *testing.T, addr string, cfg *tls.Config) *dialog {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	return greeted(t, c, err)
}

// greeted wraps a freshly dialled connection and reads the 220 greeting.
func greeted(t *testing.T, c net.Conn, err error) *dialog {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	d := &dialog{t: t, c: c, r: bufio.NewReader(c)}
	d.expect("220 ")
	return d
}

func (d *dialog) send(s string) {
	d.t.Helper()
	d.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(d.c, s); err != nil {
		d.t.Fatalf("send %q: %v", s, err)
	}
}

// reply reads one complete (possibly multi-line) reply.
func (d *dialog) reply() string {
	d.t.Helper()
	d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var all []string
	for {
		line, err := d.r.ReadString('\n')
		if err != nil {
			d.t.Fatalf("read reply (so far %q): %v", all, err)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

// expect reads a reply and checks its last line starts with prefix.
func (d *dialog) expect(prefix string) string {
	d.t.Helper()
	r := d.reply()
	last := r[strings.LastIndexByte(r, '\n')+1:]
	if !strings.HasPrefix(last, prefix) {
		d.t.Fatalf("got %q, want prefix %q", r, prefix)
	}
	return r
}

// cmd sends a command line and expects a reply prefix.
func (d *dialog) cmd(line, prefix string) string {
	d.t.Helper()
	d.send(line + "\r\n")
	return d.expect(prefix)
}

// transaction sends MAIL FROM:<mail> (mail may carry parameters after
// the closing bracket), one RCPT TO:<rcpt> and the body (CRLF lines, without
// the final dot) with DATA, and checks the reply to the end of data.
func (d *dialog) transaction(mail, rcpt, body, want string) string {
	d.t.Helper()
	if !strings.Contains(mail, ">") {
		mail += ">"
	}
	d.cmd("MAIL FROM:<"+mail, "250 ")
	d.cmd("RCPT TO:<"+rcpt+">", "250 ")
	d.cmd("DATA", "354 ")
	d.send(body + ".\r\n")
	return d.expect(want)
}

// closed reports whether the server closed the connection.
func (d *dialog) closed() bool {
	d.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := d.r.ReadByte()
	return err != nil
}
