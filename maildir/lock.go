package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// lockName is the maildrop lock file in the Maildir's top directory.
// Dovecot and mutt ignore files there that are not tmp/, new/ or cur/.
const lockName = "buzon.lock"

// Lock takes the exclusive maildrop lock: flock(LOCK_EX|LOCK_NB) on
// <maildir>/buzon.lock. flock belongs to the open file, so two sessions of
// one process exclude each other as sessions of two processes do, and the
// kernel drops it when the process dies. ErrLocked if held elsewhere.
func (m *Maildir) Lock() (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(m.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, m.errorf("lock", err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, m.errorf("lock", err)
	}
	return &Lock{f: f}, nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// Locked reports whether a session holds the maildrop lock now. It probes
// with a shared lock taken and dropped at once; a Lock racing with the
// probe may (rarely) see ErrLocked.
func (m *Maildir) Locked() bool {
	f, err := os.Open(filepath.Join(m.dir, lockName))
	if err != nil {
		return false // no lock file: never locked
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = flock(f, unix.LOCK_UN)
	return false
}

// Lock is a held maildrop lock.
type Lock struct {
	once sync.Once
	f    *os.File
	err  error
}

// Release drops the lock; safe to call twice.
func (l *Lock) Release() error {
	l.once.Do(func() {
		// Closing the only descriptor of the open file drops the flock.
		l.err = l.f.Close()
	})
	return l.err
}
