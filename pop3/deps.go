package pop3

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/buzon-mail/buzon/maildir"
)

// AuthFunc checks credentials and returns the canonical user name (the
// users store's Authenticate). It must do the same work for an unknown
// user as for a wrong password, and fail the same way: with an error
// wrapping users.ErrAuthFailed. Any other error (the store could not be
// read) is answered as a temporary failure and not counted as a failed
// login.
type AuthFunc func(ctx context.Context, name, password string) (user string, err error)

// Mailboxes gives access to users' maildrops.
type Mailboxes interface {
	// Maildrop returns the user's maildrop, creating an empty one if the
	// user has none yet.
	Maildrop(user string) (Maildrop, error)
}

// Maildrop is one user's mail as POP3 uses it.
type Maildrop interface {
	// Lock takes the exclusive maildrop lock (maildir.ErrLocked if held).
	Lock() (Releaser, error)
	// List returns the messages, oldest first, with RFC 1939 sizes.
	List() ([]maildir.Message, error)
	// Open streams a message's stored content (maildir.ErrNotFound).
	Open(id string) (io.ReadCloser, error)
	// Remove deletes a message.
	Remove(id string) error
	// Sync makes the removals durable (one directory fsync for the batch).
	Sync() error
}

// Releaser is a held lock.
type Releaser interface {
	Release() error
}

// Throttler slows down failed logins; *throttle.Throttle is one.
type Throttler interface {
	Failure(ctx context.Context, addr net.Addr) (closeSession bool)
	Blocked(addr net.Addr) bool
	Success(addr net.Addr)
}

// Counters receives the message counters; *accounting.Accountant is one.
type Counters interface {
	AddRetrieved(n int64)
	AddDeleted(n int64)
}

// MaildirStore adapts a *maildir.Store to Mailboxes.
func MaildirStore(s *maildir.Store) Mailboxes { return maildirStore{s} }

type maildirStore struct{ s *maildir.Store }

func (m maildirStore) Maildrop(user string) (Maildrop, error) {
	md, err := m.s.Maildir(user)
	if errors.Is(err, maildir.ErrNoMaildir) {
		// A user who never received mail has an empty maildrop.
		if err = m.s.Create(user); err == nil {
			md, err = m.s.Maildir(user)
		}
	}
	if err != nil {
		return nil, err
	}
	return maildirDrop{md}, nil
}

type maildirDrop struct{ m *maildir.Maildir }

func (d maildirDrop) Lock() (Releaser, error) {
	l, err := d.m.Lock()
	if err != nil {
		return nil, err
	}
	return l, nil
}
func (d maildirDrop) List() ([]maildir.Message, error)      { return d.m.List() }
func (d maildirDrop) Open(id string) (io.ReadCloser, error) { return d.m.Open(id) }
func (d maildirDrop) Remove(id string) error                { return d.m.Remove(id) }
func (d maildirDrop) Sync() error                           { return d.m.Sync() }
