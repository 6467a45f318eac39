// Package maildir stores mail in Maildirs under data_dir/mail/<user>/.
//
// Delivery is a written contract: Begin opens a file in tmp/, Write streams
// the message into it (CRLF converted to LF, as Maildir files hold it),
// Commit fsyncs the file, renames it into new/ (hard links for further
// recipients) and fsyncs new/; Abort removes the temporary file. Until
// Commit returns nil nothing is visible in new/.
package maildir

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

var (
	// ErrLocked: another session (any process) holds the maildrop lock.
	ErrLocked = errors.New("maildir: locked by another session")
	// ErrNotFound: no message with that unique id in new/ or cur/.
	ErrNotFound = errors.New("maildir: message not found")
	// ErrNoMaildir: the user has no Maildir.
	ErrNoMaildir = errors.New("maildir: no such maildir")
	// ErrInvalidUser: the name could leave the store (.., /, …).
	ErrInvalidUser = errors.New("maildir: invalid user name")
)

// Options configure a Store.
type Options struct {
	// Hostname goes (sanitised, shortened) into unique names.
	Hostname string
	// FS is the file system; nil means the real one. Tests inject failures.
	FS     FS
	Logger *slog.Logger
}

// FS is the swappable file interface delivery goes through, so tests can
// inject I/O failures (full disk, failing fsync, failing rename).
type FS interface {
	// To be defined by the maildir package: OpenFile, Rename, Link, Remove,
	// Mkdir, SyncDir, ...
}

// Store is safe for concurrent use.
type Store struct {
}

// New opens the store rooted at root (data_dir/mail), creating it 0700.
func New(root string, opts Options) (*Store, error) { panic("unimplemented") }

// Create makes the user's Maildir (tmp, new, cur; 0700) if missing.
func (s *Store) Create(user string) error { panic("unimplemented") }

// Exists reports whether the user has a Maildir.
func (s *Store) Exists(user string) bool { panic("unimplemented") }

// Archive moves the user's Maildir to deletedRoot/<user>.<unix nanoseconds>/
// (DELETE_USER keeps the mail) and returns the new path.
func (s *Store) Archive(user, deletedRoot string) (string, error) { panic("unimplemented") }

// FreeBytes is the free space available to the store's file system.
func (s *Store) FreeBytes() (uint64, error) { panic("unimplemented") }

// CleanTmp removes files in every tmp/ older than maxAge (36h at start).
func (s *Store) CleanTmp(maxAge time.Duration) error { panic("unimplemented") }

// Begin starts one delivery to the given users (at least one; each must have
// a Maildir). The same content reaches every user.
func (s *Store) Begin(users ...string) (*Delivery, error) { panic("unimplemented") }

// Delivery is one message being written. Not safe for concurrent use.
type Delivery struct {
}

// Write streams message bytes (CRLF or LF line ends) to tmp/.
func (d *Delivery) Write(p []byte) (int, error) { panic("unimplemented") }

// Size is the size of the message in CRLF form so far.
func (d *Delivery) Size() int64 { panic("unimplemented") }

// Commit makes the message durable and visible in every user's new/:
// fsync file, rename (link for further users), fsync each new/. It returns
// the unique names given. On error nothing is left in any new/.
func (d *Delivery) Commit() ([]string, error) { panic("unimplemented") }

// Abort removes the temporary file. Safe after Commit (no-op).
func (d *Delivery) Abort() error { panic("unimplemented") }

// Message is one message of a maildrop.
type Message struct {
	// ID is the Maildir unique name: the file name before ":2," and without
	// the ",S=" / ",W=" fields. It is what POP3's UIDL is derived from.
	ID string
	// Size is the size in octets in CRLF form (RFC 1939 sizes).
	Size int64
}

// Maildir is one user's Maildir.
type Maildir struct {
}

// Maildir returns the user's Maildir (ErrInvalidUser, ErrNoMaildir).
func (s *Store) Maildir(user string) (*Maildir, error) { panic("unimplemented") }

// List returns the messages of new/ and cur/, oldest delivery first, sizes
// taken from the file names (computed once for names without ,W=).
func (m *Maildir) List() ([]Message, error) { panic("unimplemented") }

// Open returns the stored content (LF line ends) of the message with that
// id, found in new/ or cur/ whatever its flags (ErrNotFound).
func (m *Maildir) Open(id string) (io.ReadCloser, error) { panic("unimplemented") }

// Remove deletes the message with that id from new/ or cur/.
func (m *Maildir) Remove(id string) error { panic("unimplemented") }

// Lock takes the exclusive maildrop lock (flock on a lock file, released by
// the kernel on a crash); ErrLocked if held elsewhere.
func (m *Maildir) Lock() (*Lock, error) { panic("unimplemented") }

// Locked reports whether a session holds the maildrop lock now.
func (m *Maildir) Locked() bool { panic("unimplemented") }

// Lock is a held maildrop lock.
type Lock struct {
}

// Release drops the lock; safe to call twice.
func (l *Lock) Release() error { panic("unimplemented") }

// Batch delivers many messages to one user with a single directory fsync
// at Close (imports and benchmarks).
type Batch struct {
}

func (s *Store) Batch(user string) (*Batch, error) { panic("unimplemented") }
func (b *Batch) Add(r io.Reader) (string, error)   { panic("unimplemented") }
func (b *Batch) Close() error                      { panic("unimplemented") }
