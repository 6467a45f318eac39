// Package state holds the run-time values MGMT can change (MAX_USERS,
// MAX_CONNEC, TRANSFORM). Values set at run time are persisted in
// data_dir/state.json and win over the configuration at start and on SIGHUP
// until `buzon config reset-runtime` removes them (SPEC §3).
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"github.com/buzon-mail/buzon/internal/atomicfile"
)

// File is the content of state.json: only the values set at run time.
type File struct {
	MaxUsers       *int  `json:"max_users,omitempty"`
	MaxConnections *int  `json:"max_connections,omitempty"`
	Transform      *bool `json:"transform,omitempty"`
}

// Values are the effective values from the configuration.
type Values struct {
	MaxUsers       int
	MaxConnections int
	Transform      bool
}

// Overlay returns base with the values of f that are set.
func (f File) Overlay(base Values) Values {
	if f.MaxUsers != nil {
		base.MaxUsers = *f.MaxUsers
	}
	if f.MaxConnections != nil {
		base.MaxConnections = *f.MaxConnections
	}
	if f.Transform != nil {
		base.Transform = *f.Transform
	}
	return base
}

// ReadFile reads state.json; a missing file is an empty File. Unknown keys
// are errors, so a typo in a hand-edited file is not silently ignored.
func ReadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read run-time state: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("parse run-time state %s: %w", path, err)
	}
	if dec.More() {
		return File{}, fmt.Errorf("parse run-time state %s: data after the JSON object", path)
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("run-time state %s: %w", path, err)
	}
	return f, nil
}

// Limits of the run-time values, as MGMT accepts them (SPEC §7).
const (
	MaxMaxConnections = 1000000
)

// Validate checks the values that are set: max_users at least 1,
// max_connections 1 to 1000000.
func (f File) Validate() error {
	if f.MaxUsers != nil && *f.MaxUsers < 1 {
		return fmt.Errorf("max_users %d: must be at least 1", *f.MaxUsers)
	}
	if f.MaxConnections != nil && (*f.MaxConnections < 1 || *f.MaxConnections > MaxMaxConnections) {
		return fmt.Errorf("max_connections %d: must be 1 to %d", *f.MaxConnections, MaxMaxConnections)
	}
	return nil
}

// Reset removes state.json (durably: the directory is fsynced, so the
// removal survives a crash). A missing file is not an error.
func Reset(path string) error {
	if err := atomicfile.Remove(path); err != nil {
		return fmt.Errorf("remove run-time state: %w", err)
	}
	return nil
}

// Runtime holds the effective values; safe for concurrent use; reads are
// lock-free (they are on hot paths: every accept, every message).
type Runtime struct {
	path string

	maxUsers       atomic.Int64
	maxConnections atomic.Int64
	transform      atomic.Bool

	mu   sync.Mutex // serialises setters, Reload and the file
	base Values     // the configured values
	file File       // the run-time overrides, as on disk
}

// New loads path and overlays it on base. An empty path keeps run-time
// values in memory only.
func New(path string, base Values) (*Runtime, error) {
	r := &Runtime{path: path, base: base}
	if path != "" {
		f, err := ReadFile(path)
		if err != nil {
			return nil, err
		}
		r.file = f
	}
	r.publish()
	return r, nil
}

// publish stores the effective values for the lock-free readers. Callers
// hold mu (or own r exclusively).
func (r *Runtime) publish() {
	v := r.file.Overlay(r.base)
	r.maxUsers.Store(int64(v.MaxUsers))
	r.maxConnections.Store(int64(v.MaxConnections))
	r.transform.Store(v.Transform)
}

// Reload re-reads state.json and replaces the configured values (SIGHUP):
// run-time values removed by `buzon config reset-runtime` stop applying,
// the rest keep winning over base. When the file cannot be read the held
// run-time values are kept, base is still applied, and the error returned.
func (r *Runtime) Reload(base Values) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base = base
	var err error
	if r.path != "" {
		var f File
		if f, err = ReadFile(r.path); err == nil {
			r.file = f
		}
	}
	r.publish()
	return err
}

// Overrides returns the values set at run time (for `config print`).
func (r *Runtime) Overrides() File {
	r.mu.Lock()
	defer r.mu.Unlock()
	return cloneFile(r.file)
}

// Values returns the effective values.
func (r *Runtime) Values() Values {
	return Values{MaxUsers: r.MaxUsers(), MaxConnections: r.MaxConnections(), Transform: r.TransformEnabled()}
}

func (r *Runtime) MaxUsers() int          { return int(r.maxUsers.Load()) }
func (r *Runtime) MaxConnections() int    { return int(r.maxConnections.Load()) }
func (r *Runtime) TransformEnabled() bool { return r.transform.Load() }

// Setters change the value and persist it atomically in state.json before
// returning (temp file, fsync, rename, fsync dir). When the file cannot be
// written the value is not changed and the error is returned. The callers
// (MGMT) check the ranges first; an out-of-range value is an error here too
// (see File.Validate), so state.json never holds one.
func (r *Runtime) SetMaxUsers(n int) error {
	return r.set(func(f *File) { f.MaxUsers = &n })
}

func (r *Runtime) SetMaxConnections(n int) error {
	return r.set(func(f *File) { f.MaxConnections = &n })
}

func (r *Runtime) SetTransform(on bool) error {
	return r.set(func(f *File) { f.Transform = &on })
}

func (r *Runtime) set(change func(*File)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := cloneFile(r.file)
	change(&next)
	if err := next.Validate(); err != nil {
		return err
	}
	if r.path != "" {
		if err := writeFile(r.path, next); err != nil {
			return err
		}
	}
	r.file = next
	r.publish()
	return nil
}

func cloneFile(f File) File {
	var c File
	if f.MaxUsers != nil {
		v := *f.MaxUsers
		c.MaxUsers = &v
	}
	if f.MaxConnections != nil {
		v := *f.MaxConnections
		c.MaxConnections = &v
	}
	if f.Transform != nil {
		v := *f.Transform
		c.Transform = &v
	}
	return c
}

// writeFile replaces path with f through atomicfile (temp file, fsync,
// rename, fsync dir): after it returns nil the new content survives a
// crash, and no reader or restart can ever see a partial file.
func writeFile(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run-time state: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save run-time state: %w", err)
	}
	return nil
}
