package state

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestReadFileMissingAndEmpty(t *testing.T) {
	dir := t.TempDir()
	f, err := ReadFile(filepath.Join(dir, "state.json"))
	if err != nil || f.MaxUsers != nil || f.MaxConnections != nil || f.Transform != nil {
		t.Fatalf("missing file: %+v, %v", f, err)
	}
	p := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestReadFileBad(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"garbage":     "not json",
		"unknown key": `{"max_user": 3}`,
		"wrong type":  `{"max_users": "3"}`,
		"truncated":   `{"max_users": 3`,
		"nul":         "{\x00}",
		"trailing":    `{"max_users": 3} {}`,
		"zero users":  `{"max_users": 0}`,
		"negative":    `{"max_connections": -1}`,
		"too many":    `{"max_connections": 1000001}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPrecedenceAndPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	base := Values{MaxUsers: 100, MaxConnections: 1000, Transform: false}

	r, err := New(path, base)
	if err != nil {
		t.Fatal(err)
	}
	if r.Values() != base {
		t.Fatalf("no overrides: %+v", r.Values())
	}
	if err := r.SetMaxConnections(5); err != nil {
		t.Fatal(err)
	}
	if err := r.SetTransform(true); err != nil {
		t.Fatal(err)
	}
	if r.MaxConnections() != 5 || !r.TransformEnabled() || r.MaxUsers() != 100 {
		t.Fatalf("after set: %+v", r.Values())
	}
	// Persisted before the setter returned.
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.MaxConnections == nil || *f.MaxConnections != 5 || f.Transform == nil || !*f.Transform || f.MaxUsers != nil {
		t.Fatalf("file: %+v", f)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", st.Mode(), err)
	}

	// SIGHUP: configured values change; overridden ones keep the run-time value.
	if err := r.Reload(Values{MaxUsers: 200, MaxConnections: 2000, Transform: false}); err != nil {
		t.Fatal(err)
	}
	if want := (Values{MaxUsers: 200, MaxConnections: 5, Transform: true}); r.Values() != want {
		t.Fatalf("after Reload: %+v, want %+v", r.Values(), want)
	}

	// Restart: the file wins over the configuration.
	r2, err := New(path, Values{MaxUsers: 300, MaxConnections: 3000})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Values{MaxUsers: 300, MaxConnections: 5, Transform: true}); r2.Values() != want {
		t.Fatalf("after restart: %+v, want %+v", r2.Values(), want)
	}
	ov := r2.Overrides()
	*ov.MaxConnections = 99 // a copy: must not change r2
	if r2.MaxConnections() != 5 {
		t.Fatal("Overrides returned shared storage")
	}

	// reset-runtime: the configuration applies again.
	if err := Reset(path); err != nil {
		t.Fatal(err)
	}
	if err := Reset(path); err != nil {
		t.Fatalf("second Reset: %v", err)
	}
	r3, err := New(path, base)
	if err != nil {
		t.Fatal(err)
	}
	if r3.Values() != base {
		t.Fatalf("after reset: %+v", r3.Values())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

func TestSetterFailureKeepsValue(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing-dir", "state.json")
	r, err := New(path, Values{MaxUsers: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetMaxUsers(20); err == nil {
		t.Fatal("setter must fail when state.json cannot be written")
	}
	if r.MaxUsers() != 10 {
		t.Fatal("a failed setter changed the value")
	}
	if r.Overrides().MaxUsers != nil {
		t.Fatal("a failed setter recorded an override")
	}
}

func TestSetterRejectsOutOfRange(t *testing.T) {
	r, err := New(filepath.Join(t.TempDir(), "state.json"), Values{MaxUsers: 1, MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []func() error{
		func() error { return r.SetMaxUsers(0) },
		func() error { return r.SetMaxConnections(0) },
		func() error { return r.SetMaxConnections(MaxMaxConnections + 1) },
	} {
		if set() == nil {
			t.Error("out-of-range value accepted")
		}
	}
	if r.MaxUsers() != 1 || r.MaxConnections() != 1 {
		t.Fatal("rejected value changed the state")
	}
}

func TestInMemory(t *testing.T) {
	r, err := New("", Values{MaxUsers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetMaxUsers(7); err != nil || r.MaxUsers() != 7 {
		t.Fatalf("%v %d", err, r.MaxUsers())
	}
}

func TestConcurrentSettersAndReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	r, err := New(path, Values{MaxUsers: 1, MaxConnections: 1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 10 {
				if err := r.SetMaxConnections(i*100 + j + 1); err != nil {
					t.Error(err)
				}
				_ = r.Reload(Values{MaxUsers: j + 1, MaxConnections: 1})
			}
		}()
		go func() {
			defer wg.Done()
			for range 1000 {
				if r.MaxConnections() < 1 || r.MaxUsers() < 1 {
					t.Error("reader saw an invalid value")
				}
				r.TransformEnabled()
			}
		}()
	}
	wg.Wait()
	// The file holds the value the last setter left in memory.
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.MaxConnections == nil || *f.MaxConnections != r.MaxConnections() {
		t.Fatalf("file %v, memory %d", f.MaxConnections, r.MaxConnections())
	}
}

func FuzzReadFile(f *testing.F) {
	f.Add([]byte(`{"max_users": 3, "max_connections": 4, "transform": true}`))
	f.Add([]byte(`{}`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"max_users": 1e99}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "state.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := ReadFile(p)
		if err != nil {
			return
		}
		// Whatever parses must round-trip through the writer.
		if err := writeFile(p, st); err != nil {
			t.Fatal(err)
		}
		again, err := ReadFile(p)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if st.Overlay(Values{}) != again.Overlay(Values{}) {
			t.Fatalf("round trip: %+v != %+v", st, again)
		}
	})
}

// TestReloadAfterReset: `config reset-runtime` removes state.json; the next
// Reload (SIGHUP) drops the run-time values and the configuration applies.
// A damaged file keeps the held values and is reported.
func TestReloadAfterReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	base := Values{MaxUsers: 10, MaxConnections: 100}
	r, err := New(path, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetMaxConnections(7); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(base); err == nil || r.MaxConnections() != 7 {
		t.Fatalf("damaged file: err %v, max connections %d (want an error and 7 kept)", err, r.MaxConnections())
	}
	if err := Reset(path); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(base); err != nil {
		t.Fatal(err)
	}
	if r.Values() != base {
		t.Fatalf("after reset and reload: %+v, want %+v", r.Values(), base)
	}
	if f := r.Overrides(); f.MaxConnections != nil {
		t.Fatalf("override still held: %+v", f)
	}
}
