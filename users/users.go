// Package users is the account store shared by SMTP AUTH, POP3 and MGMT:
// one file under data_dir, bcrypt hashes, an admin flag; every change is made
// under a cross-process lock, re-reading the file first, and written
// atomically (temp file, fsync, rename, fsync dir).
//
// The store is data_dir/users.json (mode 0600, data_dir 0700). Writers take
// an in-process mutex and an flock on data_dir/users.lock, re-read the file,
// apply their change and replace the file atomically, so the server and
// `buzon user …` running in another process never lose each other's changes.
// Readers (Authenticate, Lookup, List, Count) keep the decoded file in
// memory and re-read it only when a stat shows a new version, so a change
// made by another process is seen at the next call.
//
// Passwords are stored only as bcrypt hashes and are never logged. A check
// for an unknown user runs the same bcrypt comparison, against a dummy hash
// of the same cost, as one for a known user, so response time does not tell
// whether a name exists; a semaphore bounds how many run at once. A
// successful check is remembered for a while (see verifyCache), so a mail
// client that logs in every few minutes pays bcrypt once, not every time.
// See docs/users.md.
package users

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buzon-mail/buzon/internal/atomicfile"
	"golang.org/x/crypto/bcrypt"
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

// AdminName is the account EnsureAdmin creates on first start.
const AdminName = "admin"

// User is an account, without its hash.
type User struct {
	Name  string
	Admin bool
}

// Options configure a Store.
type Options struct {
	// MaxUsers is read at every Add (MGMT MAX_USERS changes it at run time);
	// nil, or a value below 1, means no limit.
	MaxUsers func() int
	// BcryptCost; 0 means bcrypt.DefaultCost. Tests use bcrypt.MinCost.
	BcryptCost int
	// MaxConcurrentChecks bounds password checks running at once (0: NumCPU).
	MaxConcurrentChecks int
	// VerifyCacheTTL is how long a successful password check is
	// remembered (0: DefaultVerifyCacheTTL; negative: not at all).
	VerifyCacheTTL time.Duration
	// VerifyCacheSize bounds the accounts remembered at once (0:
	// DefaultVerifyCacheSize).
	VerifyCacheSize int
	Logger          *slog.Logger
}

// Store is safe for concurrent use by many goroutines and processes.
type Store struct {
	dir      string
	cost     int
	maxUsers func() int
	log      *slog.Logger
	// sem bounds bcrypt work (checks and hashing): each costs tens of
	// milliseconds of CPU, and an unbounded burst of logins would starve
	// every other session.
	sem chan struct{}
	// dummyHash is compared against when the user does not exist.
	dummyHash []byte
	// verified remembers recent successful checks; nil when disabled.
	verified *verifyCache

	// writeMu serialises changes within this process; the flock on
	// users.lock serialises them across processes.
	writeMu sync.Mutex

	readMu sync.Mutex
	cur    *snapshot // guarded by readMu

	// Test hooks. compare is the one bcrypt comparison of each
	// Authenticate; writeHook runs at named points of an atomic write.
	compare   func(hash, password []byte) error
	writeHook func(atomicfile.Point)
	loads     atomic.Int64 // number of times the file was read and decoded
}

// snapshot is one decoded version of the store file; never modified once
// published in Store.cur.
type snapshot struct {
	users  db
	exists bool
	sig    fileSig
	// f keeps the version's inode open so that it cannot be reused by a
	// later version, which makes (dev, inode) a reliable change signal.
	f *os.File
}

func (sn *snapshot) close() {
	if sn != nil && sn.f != nil {
		sn.f.Close()
	}
}

// Open opens (creating if needed) the store in dataDir.
func Open(dataDir string, opts Options) (*Store, error) {
	cost := opts.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("users: bcrypt cost %d out of range %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	n := opts.MaxConcurrentChecks
	if n <= 0 {
		n = runtime.NumCPU()
	}
	s := &Store{
		dir:      dataDir,
		cost:     cost,
		maxUsers: opts.MaxUsers,
		log:      opts.Logger,
		sem:      make(chan struct{}, n),
		compare:  bcrypt.CompareHashAndPassword,
	}
	if opts.VerifyCacheTTL >= 0 {
		ttl, size := opts.VerifyCacheTTL, opts.VerifyCacheSize
		if ttl == 0 {
			ttl = DefaultVerifyCacheTTL
		}
		if size <= 0 {
			size = DefaultVerifyCacheSize
		}
		vc, err := newVerifyCache(ttl, size, time.Now)
		if err != nil {
			return nil, err
		}
		s.verified = vc
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := atomicfile.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("users: create data dir: %w", err)
	}
	if fi, err := os.Stat(dataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("data directory is accessible to other users; 0700 is recommended",
			"dir", dataDir, "mode", fi.Mode().Perm().String())
	}
	// Create the lock file now so that a read-only problem shows at start.
	unlock, err := flock(dataDir)
	if err != nil {
		return nil, err
	}
	unlock()
	if _, err := s.snapshot(); err != nil {
		return nil, err
	}
	// The dummy hash has the configured cost, so checking an unknown user
	// costs what checking a known one does. Its password is random and
	// discarded: nothing can match it.
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	dummy, err := bcrypt.GenerateFromPassword([]byte(fmt.Sprintf("%x", seed)), cost)
	if err != nil {
		return nil, fmt.Errorf("users: dummy hash: %w", err)
	}
	s.dummyHash = dummy
	return s, nil
}

// Close releases the file the store keeps open. The Store must not be used
// afterwards.
func (s *Store) Close() error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.cur.close()
	s.cur = nil
	return nil
}

// Dir returns the data directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// PasswordFile returns the path of data_dir/admin-password.
func (s *Store) PasswordFile() string { return filepath.Join(s.dir, adminPasswordFile) }

func (s *Store) path() string { return filepath.Join(s.dir, storeFile) }

// snapshot returns the current version of the store, re-reading the file
// only when its signature changed since the last read.
func (s *Store) snapshot() (*snapshot, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	fi, err := os.Stat(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		if s.cur == nil || s.cur.exists {
			s.install(&snapshot{users: db{}})
		}
		return s.cur, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users: stat store: %w", err)
	}
	if s.cur != nil && s.cur.exists && s.cur.sig == sigOf(fi) {
		return s.cur, nil
	}
	sn, err := s.load()
	if err != nil {
		return nil, err
	}
	s.install(sn)
	return sn, nil
}

// install publishes sn as the current version; readMu must be held.
func (s *Store) install(sn *snapshot) {
	if s.cur != nil && s.cur != sn {
		s.cur.close()
	}
	s.cur = sn
}

// load reads and decodes the store file. The signature comes from the open
// descriptor, so it always describes exactly the bytes decoded.
func (s *Store) load() (*snapshot, error) {
	s.loads.Add(1)
	f, err := os.Open(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return &snapshot{users: db{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users: open store: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("users: stat store: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStoreBytes+1))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("users: read store: %w", err)
	}
	d, err := decode(data)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", s.path(), err)
	}
	return &snapshot{users: d, exists: true, sig: sigOf(fi), f: f}, nil
}

// update applies fn to a fresh read of the store under both locks and, when
// fn reports a change, writes the result atomically. A change that ends the
// bootstrap admin's password (deleted, or given a new password) removes
// data_dir/admin-password once the new store is durable, still under the
// locks: the file would hold a password that no longer works.
func (s *Store) update(fn func(d db) (changed bool, err error)) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	unlock, err := flock(s.dir)
	if err != nil {
		return err
	}
	defer unlock()
	removeStaleTemps(s.dir)
	// Re-read under the lock: another process may have changed the file
	// since this one last looked, and its change must not be lost.
	sn, err := s.load()
	if err != nil {
		return err
	}
	hadBootstrap := bootstrapped(sn.users)
	changed, err := fn(sn.users)
	if err != nil || !changed {
		// fn did not modify the map, so this fresh read can be published.
		s.readMu.Lock()
		s.install(sn)
		s.readMu.Unlock()
		return err
	}
	sn.close()
	// Durable once Write returns: temp file, fsync, rename, fsync data_dir.
	f, err := atomicfile.Write(s.path(), encode(sn.users), atomicfile.Options{Hook: s.writeHook})
	if err != nil {
		return fmt.Errorf("users: write store: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("users: stat store: %w", err)
	}
	s.readMu.Lock()
	s.install(&snapshot{users: sn.users, exists: true, sig: sigOf(fi), f: f})
	s.readMu.Unlock()
	if hadBootstrap && !bootstrapped(sn.users) {
		s.removePasswordFile()
	}
	return nil
}

// bootstrapped reports whether d holds the admin created on first start
// with the password still in data_dir/admin-password.
func bootstrapped(d db) bool {
	for _, r := range d {
		if r.Bootstrap {
			return true
		}
	}
	return false
}

// acquire takes a slot for bcrypt work, giving up when ctx ends.
func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.sem }

// hash computes a bcrypt hash within the bound on concurrent bcrypt work.
func (s *Store) hash(password string) (string, error) {
	if err := s.acquire(context.Background()); err != nil {
		return "", err
	}
	defer s.release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return "", fmt.Errorf("users: hash password: %w", err)
	}
	return string(h), nil
}

func (s *Store) limit() int {
	if s.maxUsers == nil {
		return 0
	}
	return s.maxUsers()
}

// Authenticate checks name/password; unknown users cost the same bcrypt work
// as known ones. ErrAuthFailed on any mismatch. It waits for a free check
// slot while ctx allows and returns ctx's error if it ends first; an
// unreadable store is reported as such (callers answer with a temporary
// failure, not "wrong password").
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, fmt.Errorf("users: authenticate: %w", err)
	}
	hash := s.dummyHash
	var u User
	var stored string
	ok := false
	if n, err := Normalize(name); err == nil {
		sn, err := s.snapshot()
		if err != nil {
			return User{}, err
		}
		if r, found := sn.users[n]; found {
			hash, stored, u, ok = []byte(r.Hash), r.Hash, User{Name: n, Admin: r.Admin}, true
		}
	}
	pw := []byte(password)
	if len(pw) > MaxPasswordLen {
		// bcrypt would ignore the excess; no stored password is this long,
		// so fail, but only after the same work.
		pw, ok = pw[:MaxPasswordLen], false
	}
	// A password that passed bcrypt against this very hash a short while
	// ago passes again without it. Only successes are remembered: a wrong
	// password, or an unknown user, always pays the full comparison below.
	var mac proof
	if ok {
		mac = s.verified.proof(u.Name, pw)
	}
	if ok && s.verified.match(u.Name, stored, mac) {
		return u, nil
	}
	if err := s.acquire(ctx); err != nil {
		return User{}, fmt.Errorf("users: authenticate: %w", err)
	}
	defer s.release()
	// Logins of one account often come in bursts (a client opening several
	// connections); those that waited for a slot may find it remembered.
	if ok && s.verified.match(u.Name, stored, mac) {
		return u, nil
	}
	// Past the cache, exactly one comparison whatever happened above, so a
	// known and an unknown name cost the same.
	if err := s.compare(hash, pw); err != nil || !ok {
		return User{}, ErrAuthFailed
	}
	s.verified.remember(u.Name, stored, mac)
	return u, nil
}

// Lookup returns the user (ErrNotFound; an invalid name is not found).
func (s *Store) Lookup(name string) (User, error) {
	n, err := Normalize(name)
	if err != nil {
		return User{}, ErrNotFound
	}
	sn, err := s.snapshot()
	if err != nil {
		return User{}, err
	}
	r, ok := sn.users[n]
	if !ok {
		return User{}, ErrNotFound
	}
	return User{Name: n, Admin: r.Admin}, nil
}

// List returns all users sorted by name.
func (s *Store) List() ([]User, error) {
	sn, err := s.snapshot()
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(sn.users))
	for n, r := range sn.users {
		out = append(out, User{Name: n, Admin: r.Admin})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Count returns the number of accounts.
func (s *Store) Count() (int, error) {
	sn, err := s.snapshot()
	if err != nil {
		return 0, err
	}
	return len(sn.users), nil
}

// Add creates an account (ErrExists, ErrMaxUsers, ErrInvalidUsername,
// ErrReserved, ErrInvalidPassword).
func (s *Store) Add(name, password string, admin bool) error {
	n, err := Normalize(name)
	if err != nil {
		return err
	}
	if reserved[n] {
		return fmt.Errorf("add %s: %w", n, ErrReserved)
	}
	if err := ValidPassword(password); err != nil {
		return fmt.Errorf("add %s: %w", n, err)
	}
	// Cheap checks first so that obvious failures cost no bcrypt work; they
	// are repeated under the lock.
	if sn, err := s.snapshot(); err != nil {
		return err
	} else if err := checkAdd(sn.users, n, s.limit()); err != nil {
		return err
	}
	hash, err := s.hash(password)
	if err != nil {
		return err
	}
	err = s.update(func(d db) (bool, error) {
		if err := checkAdd(d, n, s.limit()); err != nil {
			return false, err
		}
		d[n] = record{Name: n, Hash: hash, Admin: admin}
		return true, nil
	})
	if err != nil {
		return err
	}
	// No name: account names arrive as MGMT arguments, never logged (SPEC §6).
	s.log.Info("user added", "admin", admin)
	return nil
}

func checkAdd(d db, n string, max int) error {
	if _, ok := d[n]; ok {
		return fmt.Errorf("add %s: %w", n, ErrExists)
	}
	if max > 0 && len(d) >= max {
		return fmt.Errorf("add %s: %w (%d)", n, ErrMaxUsers, max)
	}
	return nil
}

func admins(d db) int {
	c := 0
	for _, r := range d {
		if r.Admin {
			c++
		}
	}
	return c
}

// Delete removes an account (ErrNotFound, ErrLastAdmin). Deleting the
// bootstrap admin also removes its now useless data_dir/admin-password.
func (s *Store) Delete(name string) error {
	n, err := Normalize(name)
	if err != nil {
		return ErrNotFound
	}
	err = s.update(func(d db) (bool, error) {
		r, ok := d[n]
		if !ok {
			return false, fmt.Errorf("delete %s: %w", n, ErrNotFound)
		}
		if r.Admin && admins(d) == 1 {
			return false, fmt.Errorf("delete %s: %w", n, ErrLastAdmin)
		}
		delete(d, n)
		return true, nil
	})
	if err != nil {
		return err
	}
	s.verified.forget(n)
	s.log.Info("user deleted")
	return nil
}

// SetPassword changes a password (ErrNotFound, ErrInvalidPassword); changing
// the bootstrap admin's password removes data_dir/admin-password.
func (s *Store) SetPassword(name, password string) error {
	n, err := Normalize(name)
	if err != nil {
		return ErrNotFound
	}
	if err := ValidPassword(password); err != nil {
		return fmt.Errorf("set password of %s: %w", n, err)
	}
	if sn, err := s.snapshot(); err != nil {
		return err
	} else if _, ok := sn.users[n]; !ok {
		return fmt.Errorf("set password of %s: %w", n, ErrNotFound)
	}
	hash, err := s.hash(password)
	if err != nil {
		return err
	}
	err = s.update(func(d db) (bool, error) {
		r, ok := d[n]
		if !ok {
			return false, fmt.Errorf("set password of %s: %w", n, ErrNotFound)
		}
		r.Hash, r.Bootstrap = hash, false
		d[n] = r
		return true, nil
	})
	if err != nil {
		return err
	}
	s.verified.forget(n)
	s.log.Info("password changed")
	return nil
}

// removePasswordFile deletes data_dir/admin-password; call under the lock.
func (s *Store) removePasswordFile() {
	err := os.Remove(s.PasswordFile())
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		// Durable removal: a crash must not bring the stale password back.
		err = atomicfile.SyncDir(s.dir)
	}
	if err != nil {
		s.log.Warn("could not remove the initial admin password file", "file", s.PasswordFile(), "err", err)
		return
	}
	s.log.Info("removed the initial admin password file", "file", s.PasswordFile())
}

// EnsureAdmin creates "admin" on first start when no admin exists: with
// password if non-empty, else a random one written to
// data_dir/admin-password (0600), whose path is returned.
// When an admin exists, created is false and passwordFile is the path of
// data_dir/admin-password if that file still holds the bootstrap admin's
// password (it was never changed), else "".
// When no admin exists but a non-admin account named "admin" does, it
// returns an error wrapping ErrExists rather than take that account over.
func (s *Store) EnsureAdmin(password string) (created bool, passwordFile string, err error) {
	sn, err := s.snapshot()
	if err != nil {
		return false, "", err
	}
	if admins(sn.users) > 0 {
		return false, s.pendingPasswordFile(sn.users), nil
	}
	random := password == ""
	if random {
		password = RandomPassword()
	} else if err := ValidPassword(password); err != nil {
		return false, "", fmt.Errorf("admin.password: %w", err)
	}
	hash, err := s.hash(password)
	if err != nil {
		return false, "", err
	}
	file := s.PasswordFile()
	err = s.update(func(d db) (bool, error) {
		if admins(d) > 0 {
			return false, nil // another process was first
		}
		if _, ok := d[AdminName]; ok {
			return false, fmt.Errorf("no admin account, and %q is a non-admin account: %w", AdminName, ErrExists)
		}
		if random {
			// The file is written before the store: after a crash between
			// the two, the next start finds no admin and starts over, where
			// the other order could leave an admin nobody knows the password of.
			if err := atomicfile.WriteFile(s.PasswordFile(), []byte(password+"\n"), 0o600); err != nil {
				return false, err
			}
		} else {
			// A file left from an earlier bootstrap would be misleading.
			s.removePasswordFile()
		}
		d[AdminName] = record{Name: AdminName, Hash: hash, Admin: true, Bootstrap: random}
		created = true
		return true, nil
	})
	if err != nil {
		return false, "", fmt.Errorf("users: create admin: %w", err)
	}
	if !created {
		return false, "", nil
	}
	// The caller tells the operator where the password is; this is the
	// store's own trace.
	if random {
		s.log.Debug("created the admin account with a random password", "user", AdminName, "file", file)
		return true, file, nil
	}
	s.log.Debug("created the admin account with the configured password", "user", AdminName)
	return true, "", nil
}

// pendingPasswordFile returns the admin-password path while it still holds
// the bootstrap admin's working password, else "".
func (s *Store) pendingPasswordFile(d db) string {
	for _, r := range d {
		if r.Bootstrap {
			if _, err := os.Stat(s.PasswordFile()); err == nil {
				return s.PasswordFile()
			}
		}
	}
	return ""
}
