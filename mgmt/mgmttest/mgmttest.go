// Package mgmttest runs an MGMT server with in-memory dependencies, for
// the tests of the server, its client and admin_monitor.
package mgmttest

import (
	"context"
	"errors"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/pause"
	"github.com/buzon-mail/buzon/mgmt"
	"github.com/buzon-mail/buzon/users"
)

// In-process stand-ins for the server's dependencies, so dialogs can be
// tested without the stores on disk; the pause is the real pause.Gate.

type account struct {
	pw    string
	admin bool
}

// Users is an in-memory account store with the users.Store semantics MGMT
// relies on (names lower-cased, reserved names, last admin kept).
type Users struct {
	mu       sync.Mutex
	accounts map[string]account
	Max      func() int
}

func NewUsers() *Users {
	return &Users{accounts: map[string]account{"admin": {pw: "secret", admin: true}}}
}

func normalize(name string) (string, error) {
	n := strings.ToLower(name)
	if n == "" || len(n) > 64 || strings.Contains(n, "..") {
		return "", users.ErrInvalidUsername
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", users.ErrInvalidUsername
		}
	}
	return n, nil
}

func validPassword(pw string) error {
	if pw == "" || len(pw) > 72 || strings.ContainsAny(pw, " \t") {
		return users.ErrInvalidPassword
	}
	return nil
}

func (f *Users) Authenticate(ctx context.Context, name, pw string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := normalize(name)
	a, ok := f.accounts[n]
	if !ok || a.pw != pw {
		return users.User{}, users.ErrAuthFailed
	}
	return users.User{Name: n, Admin: a.admin}, nil
}

func (f *Users) Lookup(name string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := normalize(name)
	if err != nil {
		return users.User{}, err
	}
	a, ok := f.accounts[n]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	return users.User{Name: n, Admin: a.admin}, nil
}

func (f *Users) List() ([]users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []users.User
	for n, a := range f.accounts {
		out = append(out, users.User{Name: n, Admin: a.admin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *Users) Count() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.accounts), nil
}

func (f *Users) Add(name, pw string, admin bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := normalize(name)
	if err != nil {
		return err
	}
	if n == "postmaster" || n == "abuse" {
		return users.ErrReserved
	}
	if err := validPassword(pw); err != nil {
		return err
	}
	if _, ok := f.accounts[n]; ok {
		return users.ErrExists
	}
	if f.Max != nil && len(f.accounts) >= f.Max() {
		return users.ErrMaxUsers
	}
	f.accounts[n] = account{pw: pw, admin: admin}
	return nil
}

func (f *Users) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := normalize(name)
	if err != nil {
		return err
	}
	a, ok := f.accounts[n]
	if !ok {
		return users.ErrNotFound
	}
	if a.admin {
		admins := 0
		for _, o := range f.accounts {
			if o.admin {
				admins++
			}
		}
		if admins == 1 {
			return users.ErrLastAdmin
		}
	}
	delete(f.accounts, n)
	return nil
}

func (f *Users) SetPassword(name, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := normalize(name)
	a, ok := f.accounts[n]
	if !ok {
		return users.ErrNotFound
	}
	if err := validPassword(pw); err != nil {
		return err
	}
	a.pw = pw
	f.accounts[n] = a
	return nil
}

func (f *Users) Password(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accounts[name].pw
}

// Mail records created and archived Maildirs and held maildrop locks.
type Mail struct {
	mu       sync.Mutex
	dirs     map[string]bool
	locked   map[string]bool
	Archived []string
}

func NewMail() *Mail {
	return &Mail{dirs: map[string]bool{"admin": true}, locked: map[string]bool{}}
}

func (m *Mail) Create(user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[user] = true
	return nil
}

func (m *Mail) Hold(user string) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked[user] {
		return nil, mgmt.ErrInUse
	}
	m.locked[user] = true
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.locked, user)
	}, nil
}

func (m *Mail) Archive(user, root string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[user] {
		delete(m.dirs, user)
		m.Archived = append(m.Archived, user)
	}
	return nil
}

func (m *Mail) Has(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dirs[user]
}

// Stats serves St as the figures.
type Stats struct {
	mu sync.Mutex
	St accounting.Stats
}

func (f *Stats) Snapshot() accounting.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.St
}

// Set replaces the figures.
func (f *Stats) Set(st accounting.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.St = st
}

// Runtime holds the run-time values in memory.
type Runtime struct {
	MaxUsersV, MaxConnsV atomic.Int64
	TransformV           atomic.Bool
}

func (r *Runtime) MaxUsers() int                 { return int(r.MaxUsersV.Load()) }
func (r *Runtime) MaxConnections() int           { return int(r.MaxConnsV.Load()) }
func (r *Runtime) TransformEnabled() bool        { return r.TransformV.Load() }
func (r *Runtime) SetMaxUsers(n int) error       { r.MaxUsersV.Store(int64(n)); return nil }
func (r *Runtime) SetMaxConnections(n int) error { r.MaxConnsV.Store(int64(n)); return nil }
func (r *Runtime) SetTransform(on bool) error    { r.TransformV.Store(on); return nil }

// Throttle counts failures without delay; with CloseAt > 0 it asks to close
// the session at the CloseAt-th failure and blocks the address from then on.
type Throttle struct {
	Failures atomic.Int64
	CloseAt  int64
}

func (t *Throttle) Failure(ctx context.Context, addr net.Addr) bool {
	n := t.Failures.Add(1)
	return t.CloseAt > 0 && n >= t.CloseAt
}
func (t *Throttle) Blocked(addr net.Addr) bool {
	return t.CloseAt > 0 && t.Failures.Load() >= t.CloseAt
}
func (t *Throttle) Success(addr net.Addr) {}

// Server is a running MGMT server on a loopback port.
type Server struct {
	Srv      *mgmt.Server
	Addr     string
	Users    *Users
	Mail     *Mail
	Stats    *Stats
	Pause    *pause.Gate // the real one
	Runtime  *Runtime
	Throttle *Throttle
}

// Start serves MGMT on 127.0.0.1:0 until the test ends. The store holds
// "admin" (password "secret", admin); MAX USERS is 10, MAX CONNECTIONS 1000,
// a transform command counts as configured, loopback is trusted and
// RESET_USER_PASSWORD always makes "Rnd0mPass". mod may change the Config.
func Start(t testing.TB, mod func(*mgmt.Config)) *Server {
	t.Helper()
	h := &Server{
		Users:    NewUsers(),
		Mail:     NewMail(),
		Stats:    &Stats{},
		Pause:    pause.New(),
		Runtime:  &Runtime{},
		Throttle: &Throttle{},
	}
	h.Runtime.MaxUsersV.Store(10)
	h.Runtime.MaxConnsV.Store(1000)
	h.Users.Max = h.Runtime.MaxUsers
	cfg := mgmt.Config{
		Users: h.Users, Mail: h.Mail, Stats: h.Stats, Pause: h.Pause,
		Runtime: h.Runtime, Throttle: h.Throttle,
		DeletedDir:          t.TempDir(),
		TransformConfigured: true,
		LoginTimeout:        5 * time.Second,
		IdleTimeout:         5 * time.Second,
		TrustLoopback:       true,
		RandomPassword:      func() string { return "Rnd0mPass" },
	}
	if mod != nil {
		mod(&cfg)
	}
	h.Srv = mgmt.New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.Addr = l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- h.Srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Srv.Shutdown(ctx); err != nil {
			t.Errorf("mgmt shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, mgmt.ErrServerClosed) {
			t.Errorf("mgmt serve: %v", err)
		}
		h.Pause.Resume()
	})
	return h
}
