// Package users is the account store shared by SMTP AUTH, POP3 and MGMT:
// one file under data_dir, bcrypt hashes, an admin flag; every change is made
// under a cross-process lock, re-reading the file first, and written
// atomically (temp file, fsync, rename, fsync dir).
package users

import (
	"context"
	"errors"
	"log/slog"
)

var (
	ErrAuthFailed      = errors.New("users: authentication failed")
	ErrExists          = errors.New("users: user already exists")
	ErrNotFound        = errors.New("users: user not found")
	ErrMaxUsers        = errors.New("users: max users reached")
	ErrInvalidUsername = errors.New("users: invalid username")
	ErrInvalidPassword = errors.New("users: invalid password")
	ErrReserved        = errors.New("users: reserved name")
	ErrLastAdmin       = errors.New("users: cannot delete the last admin")
)

// User is an account, without its hash.
type User struct {
	Name  string
	Admin bool
}

// Options configure a Store.
type Options struct {
	// MaxUsers is read at every Add (MGMT MAX_USERS changes it at run time);
	// nil means no limit.
	MaxUsers func() int
	// BcryptCost; 0 means bcrypt.DefaultCost. Tests use bcrypt.MinCost.
	BcryptCost int
	// MaxConcurrentChecks bounds password checks running at once (0: NumCPU).
	MaxConcurrentChecks int
	Logger              *slog.Logger
}

// Store is safe for concurrent use by many goroutines and processes.
type Store struct {
}

// Open opens (creating if needed) the store in dataDir.
func Open(dataDir string, opts Options) (*Store, error) { panic("unimplemented") }

// Normalize lower-cases a user name and validates it (ErrInvalidUsername).
func Normalize(name string) (string, error) { panic("unimplemented") }

// ValidPassword checks SPEC §6's password rule (ErrInvalidPassword).
func ValidPassword(pw string) error { panic("unimplemented") }

// RandomPassword returns a new random password that passes ValidPassword.
func RandomPassword() string { panic("unimplemented") }

// Authenticate checks name/password; unknown users cost the same bcrypt work
// as known ones. ErrAuthFailed on any mismatch.
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	panic("unimplemented")
}

// Lookup returns the user (ErrNotFound).
func (s *Store) Lookup(name string) (User, error) { panic("unimplemented") }

// List returns all users sorted by name.
func (s *Store) List() ([]User, error) { panic("unimplemented") }

// Count returns the number of accounts.
func (s *Store) Count() (int, error) { panic("unimplemented") }

// Add creates an account (ErrExists, ErrMaxUsers, ErrInvalidUsername,
// ErrReserved, ErrInvalidPassword).
func (s *Store) Add(name, password string, admin bool) error { panic("unimplemented") }

// Delete removes an account (ErrNotFound, ErrLastAdmin).
func (s *Store) Delete(name string) error { panic("unimplemented") }

// SetPassword changes a password (ErrNotFound, ErrInvalidPassword); changing
// the bootstrap admin's password removes data_dir/admin-password.
func (s *Store) SetPassword(name, password string) error { panic("unimplemented") }

// EnsureAdmin creates "admin" on first start when no admin exists: with
// password if non-empty, else a random one written to
// data_dir/admin-password (0600), whose path is returned.
func (s *Store) EnsureAdmin(password string) (created bool, passwordFile string, err error) {
	panic("unimplemented")
}
