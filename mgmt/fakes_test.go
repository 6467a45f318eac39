package mgmt

import (
	"context"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/users"
)

// In-process stand-ins for the server's dependencies, so dialogs can be
// tested without the stores on disk.

type fakeAccount struct {
	pw    string
	admin bool
}

type fakeUsers struct {
	mu       sync.Mutex
	accounts map[string]fakeAccount
	max      func() int
}

func newFakeUsers() *fakeUsers {
	return &fakeUsers{accounts: map[string]fakeAccount{"admin": {pw: "secret", admin: true}}}
}

func fakeNormalize(name string) (string, error) {
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

func fakeValidPassword(pw string) error {
	if pw == "" || len(pw) > 72 || strings.ContainsAny(pw, " \t") {
		return users.ErrInvalidPassword
	}
	return nil
}

func (f *fakeUsers) Authenticate(ctx context.Context, name, pw string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := fakeNormalize(name)
	a, ok := f.accounts[n]
	if !ok || a.pw != pw {
		return users.User{}, users.ErrAuthFailed
	}
	return users.User{Name: n, Admin: a.admin}, nil
}

func (f *fakeUsers) Lookup(name string) (users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := fakeNormalize(name)
	if err != nil {
		return users.User{}, err
	}
	a, ok := f.accounts[n]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	return users.User{Name: n, Admin: a.admin}, nil
}

func (f *fakeUsers) List() ([]users.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []users.User
	for n, a := range f.accounts {
		out = append(out, users.User{Name: n, Admin: a.admin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeUsers) Count() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.accounts), nil
}

func (f *fakeUsers) Add(name, pw string, admin bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := fakeNormalize(name)
	if err != nil {
		return err
	}
	if n == "postmaster" || n == "abuse" {
		return users.ErrReserved
	}
	if err := fakeValidPassword(pw); err != nil {
		return err
	}
	if _, ok := f.accounts[n]; ok {
		return users.ErrExists
	}
	if f.max != nil && len(f.accounts) >= f.max() {
		return users.ErrMaxUsers
	}
	f.accounts[n] = fakeAccount{pw: pw, admin: admin}
	return nil
}

func (f *fakeUsers) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := fakeNormalize(name)
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

func (f *fakeUsers) SetPassword(name, pw string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, _ := fakeNormalize(name)
	a, ok := f.accounts[n]
	if !ok {
		return users.ErrNotFound
	}
	if err := fakeValidPassword(pw); err != nil {
		return err
	}
	a.pw = pw
	f.accounts[n] = a
	return nil
}

func (f *fakeUsers) password(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accounts[name].pw
}

type fakeMail struct {
	mu       sync.Mutex
	dirs     map[string]bool
	locked   map[string]bool
	archived []string
}

func newFakeMail() *fakeMail {
	return &fakeMail{dirs: map[string]bool{"admin": true}, locked: map[string]bool{}}
}

func (m *fakeMail) Create(user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dirs[user] = true
	return nil
}

func (m *fakeMail) Hold(user string) (func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locked[user] {
		return nil, ErrInUse
	}
	m.locked[user] = true
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.locked, user)
	}, nil
}

func (m *fakeMail) Archive(user, root string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[user] {
		delete(m.dirs, user)
		m.archived = append(m.archived, user)
	}
	return nil
}

func (m *fakeMail) has(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dirs[user]
}

type fakeStats struct{ st accounting.Stats }

func (f *fakeStats) Snapshot() accounting.Stats { return f.st }

// fakePause behaves as pause.Gate documents it.
type fakePause struct {
	mu    sync.Mutex
	end   time.Time
	ch    chan struct{}
	timer *time.Timer
}

func (p *fakePause) Pause(d time.Duration) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := time.Now().Add(d)
	if p.ch == nil {
		p.ch = make(chan struct{})
		p.end = end
		p.timer = time.AfterFunc(d, p.fire)
	} else if end.After(p.end) {
		p.end = end
	}
	return p.ch
}

func (p *fakePause) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return
	}
	if left := time.Until(p.end); left > 0 {
		p.timer = time.AfterFunc(left, p.fire)
		return
	}
	close(p.ch)
	p.ch = nil
}

func (p *fakePause) Resume() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return false
	}
	p.timer.Stop()
	close(p.ch)
	p.ch = nil
	return true
}

func (p *fakePause) Remaining() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		return 0
	}
	return max(time.Until(p.end), 0)
}

type fakeRuntime struct {
	maxUsers, maxConns atomic.Int64
	transform          atomic.Bool
}

func (r *fakeRuntime) MaxUsers() int                 { return int(r.maxUsers.Load()) }
func (r *fakeRuntime) MaxConnections() int           { return int(r.maxConns.Load()) }
func (r *fakeRuntime) TransformEnabled() bool        { return r.transform.Load() }
func (r *fakeRuntime) SetMaxUsers(n int) error       { r.maxUsers.Store(int64(n)); return nil }
func (r *fakeRuntime) SetMaxConnections(n int) error { r.maxConns.Store(int64(n)); return nil }
func (r *fakeRuntime) SetTransform(on bool) error    { r.transform.Store(on); return nil }

type fakeThrottle struct {
	failures atomic.Int64
	closeAt  int64
}

func (t *fakeThrottle) Failure(ctx context.Context, addr net.Addr) bool {
	n := t.failures.Add(1)
	return t.closeAt > 0 && n >= t.closeAt
}
func (t *fakeThrottle) Blocked(addr net.Addr) bool {
	return t.closeAt > 0 && t.failures.Load() >= t.closeAt
}
func (t *fakeThrottle) Success(addr net.Addr) {}
