// Package state holds the run-time values MGMT can change (MAX_USERS,
// MAX_CONNEC, TRANSFORM). Values set at run time are persisted in
// data_dir/state.json and win over the configuration at start and on SIGHUP
// until `buzon config reset-runtime` removes them (SPEC §3).
package state

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

// ReadFile reads state.json; a missing file is an empty File.
func ReadFile(path string) (File, error) { panic("unimplemented") }

// Reset removes state.json (durably).
func Reset(path string) error { panic("unimplemented") }

// Runtime holds the effective values; safe for concurrent use; reads are
// lock-free (they are on hot paths: every accept, every message).
type Runtime struct {
}

// New loads path and overlays it on base.
func New(path string, base Values) (*Runtime, error) { panic("unimplemented") }

// ApplyConfig replaces the configured values (SIGHUP); values overridden at
// run time keep their run-time value.
func (r *Runtime) ApplyConfig(base Values) { panic("unimplemented") }

func (r *Runtime) MaxUsers() int          { panic("unimplemented") }
func (r *Runtime) MaxConnections() int    { panic("unimplemented") }
func (r *Runtime) TransformEnabled() bool { panic("unimplemented") }

// Setters change the value and persist it atomically in state.json before
// returning (temp file, fsync, rename, fsync dir).
func (r *Runtime) SetMaxUsers(n int) error       { panic("unimplemented") }
func (r *Runtime) SetMaxConnections(n int) error { panic("unimplemented") }
func (r *Runtime) SetTransform(on bool) error    { panic("unimplemented") }
