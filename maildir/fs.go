package maildir

import (
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/buzon-mail/buzon/internal/atomicfile"
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

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return f, nil
}
func (osFS) Rename(o, n string) error                  { return os.Rename(o, n) }
func (osFS) Link(o, n string) error                    { return os.Link(o, n) }
func (osFS) Remove(name string) error                  { return os.Remove(name) }
func (osFS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }

func (osFS) SyncDir(dir string) error { return atomicfile.SyncDir(dir) }

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
