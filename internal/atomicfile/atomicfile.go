// Package atomicfile replaces small files so that a crash at any moment
// leaves either the old or the new content whole, and so that a write that
// returned nil survives a power loss. It is the one implementation of
// "temp file, fsync, rename, fsync dir" that the user store, the run-time
// state and the counters share.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Point names a step of Write, for tests that stop a writer there.
type Point string

const (
	// Partial: the temporary file holds half of the data.
	Partial Point = "partial"
	// BeforeRename: the temporary file is complete and fsynced.
	BeforeRename Point = "before-rename"
	// BeforeDirSync: the rename is done, the directory not yet fsynced.
	BeforeDirSync Point = "before-dirsync"
)

// Options of Write.
type Options struct {
	// Perm of the new file; 0 means 0600.
	Perm fs.FileMode
	// Hook, when not nil, runs at each Point (tests only).
	Hook func(Point)
}

// WriteFile replaces path with data, mode perm (0 means 0600).
//
// Guarantee: readers and a restart after a crash see either the old file or
// the new one in full, never a mix or a truncation; once WriteFile returns
// nil the new content is durable. The data goes to a temporary file in the
// same directory (see TempPattern), which is fsynced, renamed over path
// (atomic within one file system), and the directory is fsynced so that the
// rename itself survives a power loss.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Write(path, data, Options{Perm: perm})
	if err != nil {
		return err
	}
	return f.Close()
}

// Write is WriteFile returning the new file still open (read-only use:
// Stat, or keeping its inode alive), for the caller to close.
func Write(path string, data []byte, opts Options) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	hook := opts.Hook
	if hook == nil {
		hook = func(Point) {}
	}
	f, err := os.CreateTemp(dir, tempPrefix(base)+"*"+tempSuffix) // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if perm != 0o600 {
		if err := f.Chmod(perm); err != nil {
			return fail(err)
		}
	}
	half := len(data) / 2
	if _, err := f.Write(data[:half]); err != nil {
		return fail(err)
	}
	hook(Partial)
	if _, err := f.Write(data[half:]); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	hook(BeforeRename)
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	hook(BeforeDirSync)
	if err := SyncDir(dir); err != nil {
		// The new content is in place; only its durability across a power
		// loss is in doubt. Report it so the caller does not claim success.
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return f, nil
}

// Remove deletes path durably (the directory is fsynced). A missing file is
// not an error.
func Remove(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// MkdirAll is os.MkdirAll whose creations are durable: the parent of each
// directory it creates is fsynced, so that after a crash a directory holding
// data written later (a Maildir moved into it, a store file) still has its
// entry. Existing directories are left as they are.
func MkdirAll(path string, perm fs.FileMode) error {
	path = filepath.Clean(path)
	fi, err := os.Stat(path)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: path, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(path)
	if parent != path {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(path, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Made meanwhile by someone else, who makes it durable.
			if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	}
	return SyncDir(parent)
}

// SyncDir fsyncs the directory dir, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

const tempSuffix = ".tmp"

func tempPrefix(base string) string { return "." + base + "." }

// TempPattern is the filepath.Glob pattern of the temporary files Write
// creates for path: ".<name>.*.tmp" in the same directory. A writer that
// dies between creating one and renaming it leaves it behind; see
// RemoveTemps.
func TempPattern(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, globEscape(tempPrefix(base))+"*"+tempSuffix)
}

// RemoveTemps deletes the temporary files left by writers of path that died
// mid-write. Call it only while no other writer of path can be running (for
// example while holding the lock that serialises them), else it may remove a
// live writer's file and make that write fail.
func RemoveTemps(path string) {
	matches, _ := filepath.Glob(TempPattern(path))
	for _, m := range matches {
		os.Remove(m)
	}
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
