package users

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/buzon-mail/buzon/internal/atomicfile"
	"golang.org/x/crypto/bcrypt"
)

// File names under data_dir.
const (
	storeFile         = "users.json"
	lockFile          = "users.lock"
	adminPasswordFile = "admin-password"
)

// formatVersion is the only on-disk version this code reads and writes.
const formatVersion = 1

// maxStoreBytes bounds what the decoder accepts (10,000 users take about
// 1 MB); a larger file is refused instead of exhausting memory.
const maxStoreBytes = 64 << 20

// record is one account as stored.
type record struct {
	Name  string `json:"name"`
	Hash  string `json:"hash"`
	Admin bool   `json:"admin,omitempty"`
	// Bootstrap marks the admin created on first start; changing its
	// password or deleting it removes data_dir/admin-password.
	Bootstrap bool `json:"bootstrap,omitempty"`
}

type fileFormat struct {
	Version int      `json:"version"`
	Users   []record `json:"users"`
}

// db is the decoded store: accounts by normalized name.
type db map[string]record

// decode parses and validates a store file. It refuses anything it would
// not itself write (unknown version, invalid or duplicate names, hashes that
// are not bcrypt) so that a damaged file stops the store instead of silently
// dropping or aliasing accounts.
func decode(data []byte) (db, error) {
	if len(data) > maxStoreBytes {
		return nil, fmt.Errorf("users: store file larger than %d bytes", maxStoreBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileFormat
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("users: decode store: %w", err)
	}
	if dec.More() {
		return nil, errors.New("users: decode store: trailing data")
	}
	if f.Version != formatVersion {
		return nil, fmt.Errorf("users: store format version %d, want %d", f.Version, formatVersion)
	}
	d := make(db, len(f.Users))
	for i, r := range f.Users {
		n, err := Normalize(r.Name)
		if err != nil || n != r.Name {
			return nil, fmt.Errorf("users: store entry %d: invalid name", i)
		}
		if _, dup := d[n]; dup {
			return nil, fmt.Errorf("users: store entry %d: duplicate name %q", i, n)
		}
		if _, err := bcrypt.Cost([]byte(r.Hash)); err != nil {
			return nil, fmt.Errorf("users: store entry %d (%s): invalid hash: %w", i, n, err)
		}
		d[n] = r
	}
	return d, nil
}

// encode writes the accounts sorted by name, one per line, so that the file
// diffs well and is readable by an operator.
func encode(d db) []byte {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"version\": %d, \"users\": [", formatVersion)
	for i, n := range names {
		line, err := json.Marshal(d[n])
		if err != nil {
			panic(err) // strings and bools always marshal
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	return b.Bytes()
}

// removeStaleTemps deletes temporary files left by a writer that died
// mid-write. Only call it while holding the store lock: temporary files are
// only created by a writer holding it.
func removeStaleTemps(dir string) {
	atomicfile.RemoveTemps(filepath.Join(dir, storeFile))
	atomicfile.RemoveTemps(filepath.Join(dir, adminPasswordFile))
}

// flock takes an exclusive lock on dir/users.lock, shared by every process
// using the store; the kernel releases it if the process dies. Returns the
// unlock function.
func flock(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("users: open lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("users: lock store: %w", err)
	}
	// Closing the descriptor releases the flock.
	return func() { f.Close() }, nil
}

// fileSig identifies one version of the store file. Files are only ever
// replaced by rename and the Store keeps the version it read open, so that
// inode cannot be reused: a different (dev, inode) means a new version; size
// and mtime also catch an operator editing the file in place.
type fileSig struct {
	dev, ino uint64
	size     int64
	mtimeNs  int64
}

func sigOf(fi os.FileInfo) fileSig {
	sig := fileSig{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		sig.dev, sig.ino = uint64(st.Dev), st.Ino
	}
	return sig
}
