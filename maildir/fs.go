package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// FS is the swappable file interface delivery goes through, so tests can
// inject I/O failures (full disk, failing fsync, failing rename or link).
// Reading (List, Open) uses the operating system directly.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename is os.Rename (atomic within one file system).
	Rename(oldpath, newpath string) error
	// Link is os.Link (a hard link).
	Link(oldpath, newpath string) error
	// Remove is os.Remove.
	Remove(name string) error
	// Mkdir is os.Mkdir.
	Mkdir(name string, perm os.FileMode) error
	// SyncDir fsyncs a directory, making the entries created, renamed or
	// removed in it durable.
	SyncDir(dir string) error
	// SyncFS flushes the whole file system holding path (syncfs(2)): one
	// call makes every file written before it durable (used by Batch).
	SyncFS(path string) error
}

// File is an open file as FS returns it.
type File interface {
	io.Reader
	io.Writer
	io.Closer
	Sync() error
	Name() string
}

// osFS is the real file system.
type osFS struct{}

// OpenFile opens with open(2) and wraps the descriptor with os.NewFile:
// os.OpenFile would also try (and, for a regular file, fail) to register
// it with the network poller, four fcntl and one epoll_ctl call per
// delivery for nothing. Files here are always blocking.
func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(name, flag|unix.O_CLOEXEC, uint32(perm.Perm()))
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Rename is rename(2) without os.Rename's extra lstat of the target (a
// Maildir file is never renamed onto a directory).
func (osFS) Rename(o, n string) error {
	if _, err := retryEINTR(func() (int, error) { return 0, unix.Rename(o, n) }); err != nil {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: err}
	}
	return nil
}
func (osFS) Link(o, n string) error                    { return os.Link(o, n) }
func (osFS) Remove(name string) error                  { return os.Remove(name) }
func (osFS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }

// SyncDir is open, fsync, close: three system calls (see OpenFile).
func (osFS) SyncDir(dir string) error {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return fmt.Errorf("sync dir: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	_, err = retryEINTR(func() (int, error) { return 0, unix.Fsync(fd) })
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("sync dir: %w", &os.PathError{Op: "fsync", Path: dir, Err: err})
	}
	return nil
}

// retryEINTR repeats a system call interrupted by a signal (Go's runtime
// preempts with signals; the os package retries the same way).
func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func (osFS) SyncFS(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		err = unix.Syncfs(int(d.Fd()))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "syncfs", Path: path, Err: err}
	}
	return nil
}

// IsDiskFull reports whether err (from Begin, Write, Commit or Batch) was
// caused by a full disk or an exhausted quota; SMTP answers those with
// 452 4.3.1 instead of 451 4.3.0. Equivalent to errors.Is(err,
// syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT).
func IsDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// dirSyncer shares directory fsyncs between concurrent deliveries (group
// commit). Guarantee: a caller of sync(dir) returns only after an fsync of
// dir that STARTED after sync was called has completed, so every entry
// the caller renamed or linked into dir before calling is durable. A
// caller arriving while an fsync of dir is in progress does not ride on
// it (its entry may have missed it) but waits for the next one, which
// serves every caller that arrived meanwhile. A failed fsync fails every
// caller it served.
type dirSyncer struct {
	mu   sync.Mutex
	dirs map[string]*dirSync // by directory path; one per new/ delivered to
}

// dirSync is the group-commit state of one directory.
type dirSync struct {
	cond    sync.Cond // on dirSyncer.mu
	running bool      // an fsync of the directory is in progress
	next    *syncRound
}

// syncRound is one fsync and the callers it serves.
type syncRound struct {
	waiters  int // callers served by this round (tests look at it)
	finished bool
	err      error
}

// sync fsyncs dir through fs, sharing the fsync with concurrent callers.
func (y *dirSyncer) sync(fs FS, dir string) error {
	y.mu.Lock()
	if y.dirs == nil {
		y.dirs = make(map[string]*dirSync)
	}
	ds := y.dirs[dir]
	if ds == nil {
		ds = &dirSync{}
		ds.cond.L = &y.mu
		y.dirs[dir] = ds
	}
	// Join the round that has not started yet: it starts after this point.
	if ds.next == nil {
		ds.next = &syncRound{}
	}
	r := ds.next
	r.waiters++
	for {
		if r.finished {
			y.mu.Unlock()
			return r.err
		}
		if !ds.running {
			// r is still ds.next (only its own callers start it): lead it.
			// Deliveries whose file fsyncs completed in the same journal
			// commit as ours reach this point together: yield once so
			// they can join r before it is closed and its fsync starts.
			ds.running = true
			y.mu.Unlock()
			runtime.Gosched()
			y.mu.Lock()
			ds.next = nil
			y.mu.Unlock()
			err := fs.SyncDir(dir)
			y.mu.Lock()
			r.finished, r.err = true, err
			ds.running = false
			ds.cond.Broadcast()
			y.mu.Unlock()
			return err
		}
		ds.cond.Wait()
	}
}

// forget drops the state of directories under prefix (an archived user).
func (y *dirSyncer) forget(prefix string) {
	y.mu.Lock()
	defer y.mu.Unlock()
	for d, ds := range y.dirs {
		if strings.HasPrefix(d, prefix) && !ds.running && ds.next == nil {
			delete(y.dirs, d)
		}
	}
}
