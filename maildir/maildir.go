// Package maildir stores mail in Maildirs under data_dir/mail/<user>/.
//
// Delivery is a written contract: Begin opens a file in tmp/, Write streams
// the message into it (CRLF converted to LF, as Maildir files hold it),
// Commit fsyncs the file, renames it into new/ (hard links for further
// recipients) and fsyncs new/; Abort removes the temporary file. When
// Commit fails nothing is left in any new/.
//
// File names follow the Maildir convention with Dovecot's size fields,
// "<unique>,S=<size on disk>,W=<size in CRLF form>", so listing a maildrop
// reads directory entries only. Other programs (Dovecot, mutt) may move
// messages between new/ and cur/ and add ":2,<flags>"; messages are found
// by their unique name wherever they are. See docs/maildir.md.
package maildir

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buzon-mail/buzon/internal/atomicfile"
	"golang.org/x/sys/unix"
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
	// Hostname goes (sanitised, shortened) into unique names; empty means
	// the OS host name.
	Hostname string
	// FS is the file system delivery writes through; nil means the real
	// one. Tests inject failures.
	FS     FS
	Logger *slog.Logger
}

// Store is safe for concurrent use.
type Store struct {
	root  string
	fs    FS
	log   *slog.Logger
	names *namer

	bufs  sync.Pool // *bufio.Writer for deliveries
	syncs dirSyncer // shared fsyncs of new/ (group commit)

	mu    sync.Mutex
	sizes map[string]int64 // CRLF sizes computed for names without ,W= (key: maildir path + "\x00" + id)
}

// New opens the store rooted at root (data_dir/mail), creating it 0700.
func New(root string, opts Options) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("maildir store: %w", err)
	}
	if err := atomicfile.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("maildir store: %w", err)
	}
	host := opts.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("maildir store: random seed: %w", err)
	}
	s := &Store{
		root: root,
		fs:   opts.FS,
		log:  opts.Logger,
		names: &namer{
			seed: binary.LittleEndian.Uint64(seed[:]),
			pid:  strconv.Itoa(os.Getpid()),
			host: sanitizeHost(host),
		},
		sizes: make(map[string]int64),
	}
	if s.fs == nil {
		s.fs = osFS{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Root is the directory holding the Maildirs.
func (s *Store) Root() string { return s.root }

// validUser rejects names that could leave the store or be hidden:
// empty, ".", "..", a leading dot, '/', '\\', NUL or other control octets,
// or longer than 255 octets (a file name's limit).
func validUser(user string) bool {
	if user == "" || len(user) > 255 || user[0] == '.' {
		return false
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return false
		}
	}
	return true
}

// userDir returns root/<user>, never a path outside root.
func (s *Store) userDir(user string) (string, error) {
	if !validUser(user) {
		return "", ErrInvalidUser
	}
	dir := filepath.Join(s.root, user)
	if filepath.Dir(dir) != s.root {
		return "", ErrInvalidUser
	}
	return dir, nil
}

// Create makes the user's Maildir (tmp, new, cur; 0700) if missing; new
// directories are made durable (their parent fsynced).
func (s *Store) Create(user string) error {
	dir, err := s.userDir(user)
	if err != nil {
		return err
	}
	created := false
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		err := s.fs.Mkdir(d, 0o700)
		switch {
		case err == nil:
			created = true
		case errors.Is(err, os.ErrExist):
		default:
			return fmt.Errorf("create maildir for %s: %w", user, err)
		}
	}
	if created {
		for _, d := range []string{s.root, dir} {
			if err := s.fs.SyncDir(d); err != nil {
				return fmt.Errorf("create maildir for %s: %w", user, err)
			}
		}
	}
	return nil
}

// Exists reports whether the user has a Maildir.
func (s *Store) Exists(user string) bool {
	dir, err := s.userDir(user)
	if err != nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(dir, "new"))
	return err == nil && fi.IsDir()
}

// Archive moves the user's Maildir to deletedRoot/<user>.<unix nanoseconds>/
// (DELETE_USER keeps the mail) and returns the new path.
func (s *Store) Archive(user, deletedRoot string) (string, error) {
	dir, err := s.userDir(user)
	if err != nil {
		return "", err
	}
	if !s.Exists(user) {
		return "", fmt.Errorf("archive %s: %w", user, ErrNoMaildir)
	}
	// deleted/ is made durably: the archive moved into it must not lose
	// its parent's entry in a crash.
	if err := atomicfile.MkdirAll(deletedRoot, 0o700); err != nil {
		return "", fmt.Errorf("archive %s: %w", user, err)
	}
	dst := filepath.Join(deletedRoot, user+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := s.fs.Rename(dir, dst); err != nil {
		return "", fmt.Errorf("archive %s: %w", user, err)
	}
	for _, d := range []string{s.root, deletedRoot} {
		if err := s.fs.SyncDir(d); err != nil {
			return dst, fmt.Errorf("archive %s: %w", user, err)
		}
	}
	s.syncs.forget(dir + string(filepath.Separator))
	s.mu.Lock()
	prefix := dir + "\x00"
	for k := range s.sizes {
		if strings.HasPrefix(k, prefix) {
			delete(s.sizes, k)
		}
	}
	s.mu.Unlock()
	return dst, nil
}

// FreeBytes is the free space available to the store's file system
// (to an unprivileged user: statfs f_bavail).
func (s *Store) FreeBytes() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.root, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// CleanTmp removes files in every tmp/ older than maxAge (36h at start):
// leftovers of deliveries cut off by a crash.
func (s *Store) CleanTmp(maxAge time.Duration) error {
	users, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("clean tmp: %w", err)
	}
	cutoff := time.Now().Add(-maxAge)
	var errs []error
	for _, u := range users {
		if !u.IsDir() || !validUser(u.Name()) {
			continue
		}
		tmp := filepath.Join(s.root, u.Name(), "tmp")
		ents, err := os.ReadDir(tmp)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil || fi.IsDir() || !fi.ModTime().Before(cutoff) {
				continue
			}
			if err := s.fs.Remove(filepath.Join(tmp, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			s.log.Info("removed stale temporary file", "user", u.Name(), "file", e.Name())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean tmp: %w", err)
	}
	return nil
}

// cachedSize returns a CRLF size computed earlier for a foreign name.
func (s *Store) cachedSize(dir, id string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.sizes[dir+"\x00"+id]
	return v, ok
}

func (s *Store) cacheSize(dir, id string, v int64) {
	s.mu.Lock()
	s.sizes[dir+"\x00"+id] = v
	s.mu.Unlock()
}

// Message is one message of a maildrop.
type Message struct {
	// ID is the Maildir unique name: the file name before ":2," and without
	// the ",S=" / ",W=" fields. It is what POP3's UIDL is derived from.
	// buzon's own IDs are at most 64 octets of 0x21-0x7E.
	ID string
	// Size is the size in octets in CRLF form (RFC 1939 sizes): what RETR
	// sends before dot-stuffing and without the terminating ".". Every
	// line end of the stored file counts 2 octets as CRLF: LF, a stored
	// CR LF, and a lone CR (one not followed by LF, also at the very end)
	// alike; every other octet counts 1. A last line without a line end
	// counts only its octets: the CRLF that POP3 must send before the
	// terminating "." belongs to the terminator. POP3's streaming output
	// must convert the same way (CRLFSize is the reference).
	Size int64
}

// Maildir is one user's Maildir. Safe for concurrent use.
type Maildir struct {
	s    *Store
	user string
	dir  string

	mu     sync.Mutex
	listed []entry        // the last List, until paths is built from it
	paths  map[string]loc // id → file, as last seen
}

// Maildir returns the user's Maildir (ErrInvalidUser, ErrNoMaildir).
func (s *Store) Maildir(user string) (*Maildir, error) {
	dir, err := s.userDir(user)
	if err != nil {
		return nil, err
	}
	if !s.Exists(user) {
		return nil, fmt.Errorf("maildir of %s: %w", user, ErrNoMaildir)
	}
	return &Maildir{s: s, user: user, dir: dir}, nil
}

// Dir is the Maildir's path.
func (m *Maildir) Dir() string { return m.dir }

// read errors are wrapped with the user for the log; callers map them.
func (m *Maildir) errorf(op string, err error) error {
	return fmt.Errorf("maildir %s of %s: %w", op, m.user, err)
}

var _ io.ReadCloser = (*os.File)(nil)
