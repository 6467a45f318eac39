package mgmt

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// The server reaches everything through these small interfaces so that its
// dialogs can be tested with in-process fakes. *users.Store,
// *accounting.Accountant, *pause.Gate, *state.Runtime and *throttle.Throttle
// satisfy them directly; MaildirStore adapts *maildir.Store.

// UserStore is the account store (users.Store).
type UserStore interface {
	Authenticate(ctx context.Context, name, password string) (users.User, error)
	Lookup(name string) (users.User, error)
	List() ([]users.User, error)
	Count() (int, error)
	Add(name, password string, admin bool) error
	Delete(name string) error
	SetPassword(name, password string) error
}

// MailStore is the part of the Maildir store MGMT needs.
type MailStore interface {
	// Create makes the user's Maildir.
	Create(user string) error
	// Hold takes the user's maildrop lock so that no POP3 session can start
	// while the account is deleted; ErrInUse when a session holds it.
	Hold(user string) (release func(), err error)
	// Archive moves the Maildir under deletedRoot (no Maildir is not an error).
	Archive(user, deletedRoot string) error
}

// ErrInUse: a POP3 session holds the user's maildrop.
var ErrInUse = errors.New("mgmt: maildrop in use")

// Stats gives the figures (accounting.Accountant).
type Stats interface {
	Snapshot() accounting.Stats
}

// Pauser is the MGMT pause (pause.Gate).
type Pauser interface {
	Pause(d time.Duration) <-chan struct{}
	Resume() bool
	Remaining() time.Duration
}

// Runtime holds the run-time values (state.Runtime).
type Runtime interface {
	MaxUsers() int
	MaxConnections() int
	TransformEnabled() bool
	SetMaxUsers(n int) error
	SetMaxConnections(n int) error
	SetTransform(on bool) error
}

// Throttler slows down failed logins (throttle.Throttle).
type Throttler interface {
	Failure(ctx context.Context, addr net.Addr) (closeSession bool)
	Blocked(addr net.Addr) bool
	Success(addr net.Addr)
}

// MaildirStore adapts a *maildir.Store to MailStore.
func MaildirStore(s *maildir.Store) MailStore { return maildirStore{s} }

type maildirStore struct{ s *maildir.Store }

func (m maildirStore) Create(user string) error { return m.s.Create(user) }

func (m maildirStore) Hold(user string) (func(), error) {
	md, err := m.s.Maildir(user)
	if errors.Is(err, maildir.ErrNoMaildir) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	lk, err := md.Lock()
	if errors.Is(err, maildir.ErrLocked) {
		return nil, ErrInUse
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = lk.Release() }, nil
}

func (m maildirStore) Archive(user, deletedRoot string) error {
	if !m.s.Exists(user) {
		return nil
	}
	_, err := m.s.Archive(user, deletedRoot)
	return err
}
