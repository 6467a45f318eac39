package users

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func openTest(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if opts.BcryptCost == 0 {
		opts.BcryptCost = bcrypt.MinCost
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAdd(t *testing.T, s *Store, name, pw string, admin bool) {
	t.Helper()
	if err := s.Add(name, pw, admin); err != nil {
		t.Fatalf("Add(%q): %v", name, err)
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	s := openTest(t, dir, Options{})
	mustAdd(t, s, "bob", "pw-bob", false)
	modes := map[string]os.FileMode{
		dir:                                   0o700 | os.ModeDir,
		filepath.Join(dir, "users.json"):      0o600,
		filepath.Join(dir, "users.lock"):      0o600,
		filepath.Join(dir, adminPasswordFile): 0, // checked in the bootstrap test
		filepath.Join(dir, "nonexistent"):     0,
	}
	for p, want := range modes {
		if want == 0 {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestOpenRejects(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{BcryptCost: 99}); err == nil {
		t.Error("Open with cost 99 succeeded")
	}
	for name, content := range map[string]string{
		"garbage":   "not json",
		"truncated": `{"version":1,"users":[{"name":"bob","hash":"$2a$04$pCa`,
		"empty":     "",
		"traversal": `{"version":1,"users":[{"name":"../x","hash":"` + testHash + `"}]}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "users.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, Options{BcryptCost: bcrypt.MinCost}); err == nil {
			t.Errorf("%s store: Open succeeded", name)
		}
	}
}

func TestAddRules(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s, "bob", "pw", false)
	tests := []struct {
		name, pw string
		want     error
	}{
		{"alice", "pw", nil},
		{"Carol", "pw", nil},
		{"bob", "other", ErrExists},
		{"BOB", "other", ErrExists},
		{"carol", "pw", ErrExists},
		{"postmaster", "pw", ErrReserved},
		{"Abuse", "pw", ErrReserved},
		{"../x", "pw", ErrInvalidUsername},
		{"a/b", "pw", ErrInvalidUsername},
		{"a\x00b", "pw", ErrInvalidUsername},
		{"", "pw", ErrInvalidUsername},
		{"ñu", "pw", ErrInvalidUsername},
		{strings.Repeat("a", 65), "pw", ErrInvalidUsername},
		{strings.Repeat("a", 64), "pw", nil},
		{"dave", "", ErrInvalidPassword},
		{"dave", "two words", ErrInvalidPassword},
		{"dave", "nul\x00", ErrInvalidPassword},
		{"dave", strings.Repeat("p", 73), ErrInvalidPassword},
		{"dave", strings.Repeat("p", 72), nil},
	}
	for _, tt := range tests {
		err := s.Add(tt.name, tt.pw, false)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Add(%q, %q) = %v, want %v", tt.name, tt.pw, err, tt.want)
		}
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range got {
		names = append(names, u.Name)
	}
	want := []string{strings.Repeat("a", 64), "alice", "bob", "carol", "dave"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("List = %v, want %v", names, want)
	}
	if n, _ := s.Count(); n != len(want) {
		t.Errorf("Count = %d, want %d", n, len(want))
	}
}

func TestNoPlaintextInFile(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := openTest(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	pws := map[string]string{"bob": "Zq7-unique-bob", "eve": "Zq7-unique-eve", "root": "Zq7-unique-root"}
	for n, pw := range pws {
		mustAdd(t, s, n, pw, n == "root")
	}
	if err := s.SetPassword("bob", "Zq7-changed-bob"); err != nil {
		t.Fatal(err)
	}
	pws["bob2"] = "Zq7-changed-bob"
	data, err := os.ReadFile(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range pws {
		if bytes.Contains(data, []byte(pw)) {
			t.Errorf("store file holds the password %q", pw)
		}
		if strings.Contains(logs.String(), pw) {
			t.Errorf("log holds the password %q", pw)
		}
	}
	if c := bytes.Count(data, []byte(`"hash":"$2a$04$`)); c != 3 {
		t.Errorf("%d bcrypt hashes in the file, want 3:\n%s", c, data)
	}
}

func TestAuthenticate(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s, "bob", "right", false)
	mustAdd(t, s, "root", "rootpw", true)
	long := strings.Repeat("p", 72)
	mustAdd(t, s, "long", long, false)
	ctx := context.Background()
	tests := []struct {
		name, pw string
		want     User
	}{
		{"bob", "right", User{Name: "bob"}},
		{"BoB", "right", User{Name: "bob"}},
		{"root", "rootpw", User{Name: "root", Admin: true}},
		{"long", long, User{Name: "long"}},
		{"bob", "wrong", User{}},
		{"bob", "Right", User{}},
		{"bob", "", User{}},
		{"bob", "right\x00", User{}},
		{"nobody", "right", User{}},
		{"../bob", "right", User{}},
		{"", "", User{}},
		{"bob\x00", "right", User{}},
		{"long", long + "x", User{}}, // bcrypt would ignore the 73rd byte
	}
	for _, tt := range tests {
		got, err := s.Authenticate(ctx, tt.name, tt.pw)
		if tt.want.Name == "" {
			if !errors.Is(err, ErrAuthFailed) || got != (User{}) {
				t.Errorf("Authenticate(%q, %q) = %v, %v; want ErrAuthFailed", tt.name, tt.pw, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Authenticate(%q, %q) = %v, %v; want %v", tt.name, tt.pw, got, err, tt.want)
		}
	}
}

// TestAuthenticateSameWork shows structurally that every attempt, whether
// the user exists or not, runs exactly one bcrypt comparison against a hash
// of the configured cost (with nothing remembered; see verify_test.go).
func TestAuthenticateSameWork(t *testing.T) {
	const cost = bcrypt.MinCost + 1
	s := openTest(t, t.TempDir(), Options{BcryptCost: cost, VerifyCacheTTL: -1})
	mustAdd(t, s, "bob", "right", false)
	var calls int
	var costs []int
	s.compare = func(hash, pw []byte) error {
		calls++
		c, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("compared against a non-bcrypt hash %q", hash)
		}
		costs = append(costs, c)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	cases := []struct{ name, pw string }{
		{"bob", "right"},
		{"bob", "wrong"},
		{"nobody", "right"},
		{"nobody", "wrong"},
		{"../etc/passwd", "x"},
		{"", ""},
		{"bob", strings.Repeat("x", 500)},
	}
	for _, c := range cases {
		calls, costs = 0, nil
		_, _ = s.Authenticate(context.Background(), c.name, c.pw)
		if calls != 1 || costs[0] != cost {
			t.Errorf("Authenticate(%q, %q): %d comparisons at costs %v, want 1 at cost %d", c.name, c.pw, calls, costs, cost)
		}
	}
}

func TestConcurrentChecksBounded(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxConcurrentChecks: 2, VerifyCacheTTL: -1})
	mustAdd(t, s, "bob", "pw", false)
	var inFlight, peak, total atomic.Int32
	entered := make(chan struct{}, 100)
	gate := make(chan struct{})
	s.compare = func(hash, pw []byte) error {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		total.Add(1)
		entered <- struct{}{}
		<-gate
		inFlight.Add(-1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _, _ = s.Authenticate(context.Background(), "bob", "pw") })
	}
	<-entered
	<-entered // both slots taken and held
	// A third attempt waits for a slot; ending its context releases it
	// without it ever reaching bcrypt.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Authenticate(ctx, "bob", "pw")
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Authenticate = %v, want context.Canceled", err)
	}
	if n := total.Load(); n != 2 {
		t.Fatalf("%d comparisons started, want 2", n)
	}
	// A burst never exceeds the bound.
	for range 20 {
		wg.Go(func() {
			if _, err := s.Authenticate(context.Background(), "bob", "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	close(gate)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrent comparisons %d, want 2", p)
	}
	if n := total.Load(); n != 22 {
		t.Errorf("%d comparisons, want 22", n)
	}
}

func TestDeleteLastAdmin(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s, "root", "pw", true)
	mustAdd(t, s, "bob", "pw", false)
	steps := []struct {
		name string
		want error
	}{
		{"root", ErrLastAdmin},
		{"nobody", ErrNotFound},
		{"../root", ErrNotFound},
		{"bob", nil},
		{"bob", ErrNotFound},
		{"root", ErrLastAdmin},
	}
	for _, st := range steps {
		if err := s.Delete(st.name); !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("Delete(%q) = %v, want %v", st.name, err, st.want)
		}
	}
	mustAdd(t, s, "root2", "pw", true)
	if err := s.Delete("ROOT"); err != nil {
		t.Fatalf("Delete(root) with a second admin: %v", err)
	}
	if err := s.Delete("root2"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("Delete(root2) = %v, want ErrLastAdmin", err)
	}
	if _, err := s.Lookup("root"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(root) after delete = %v", err)
	}
	if _, err := s.Authenticate(context.Background(), "root", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("deleted user authenticated: %v", err)
	}
}

func TestSetPassword(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s, "bob", "old", false)
	ctx := context.Background()
	if err := s.SetPassword("nobody", "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(nobody) = %v", err)
	}
	if err := s.SetPassword("../bob", "new"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(../bob) = %v", err)
	}
	if err := s.SetPassword("bob", "bad pw"); !errors.Is(err, ErrInvalidPassword) {
		t.Errorf("SetPassword(bad pw) = %v", err)
	}
	if err := s.SetPassword("BOB", "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "bob", "old"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("old password still works: %v", err)
	}
	if _, err := s.Authenticate(ctx, "bob", "new"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestMaxUsers(t *testing.T) {
	var max atomic.Int64
	max.Store(2)
	s := openTest(t, t.TempDir(), Options{MaxUsers: func() int { return int(max.Load()) }})
	mustAdd(t, s, "a", "pw", false)
	mustAdd(t, s, "b", "pw", false)
	if err := s.Add("c", "pw", false); !errors.Is(err, ErrMaxUsers) {
		t.Fatalf("Add over the limit = %v, want ErrMaxUsers", err)
	}
	if err := s.Add("a", "pw", false); !errors.Is(err, ErrExists) {
		t.Fatalf("Add existing when full = %v, want ErrExists", err)
	}
	max.Store(3) // MGMT MAX_USERS at run time
	mustAdd(t, s, "c", "pw", false)
	max.Store(1) // below the count: existing users stay, no new ones
	if err := s.Add("d", "pw", false); !errors.Is(err, ErrMaxUsers) {
		t.Fatalf("Add with limit below count = %v", err)
	}
	if n, _ := s.Count(); n != 3 {
		t.Fatalf("Count = %d", n)
	}
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	max.Store(3)
	mustAdd(t, s, "d", "pw", false)

	unlimited := openTest(t, t.TempDir(), Options{})
	for i := range 12 {
		mustAdd(t, unlimited, fmt.Sprintf("u%d", i), "pw", false)
	}
}

func TestEnsureAdminRandom(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := openTest(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	created, file, err := s.EnsureAdmin("")
	if err != nil || !created || file != filepath.Join(dir, "admin-password") {
		t.Fatalf("EnsureAdmin = %v, %q, %v", created, file, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode() != 0o600 {
		t.Fatalf("password file: %v, %v", fi, err)
	}
	data, _ := os.ReadFile(file)
	pw := strings.TrimSuffix(string(data), "\n")
	if err := ValidPassword(pw); err != nil || len(pw) < 16 {
		t.Fatalf("password file holds %q: %v", pw, err)
	}
	if strings.Contains(logs.String(), pw) {
		t.Fatalf("log holds the password: %s", logs.String())
	}
	if !strings.Contains(logs.String(), file) {
		t.Errorf("debug log does not say where the password is: %s", logs.String())
	}
	store, _ := os.ReadFile(filepath.Join(dir, "users.json"))
	if strings.Contains(string(store), pw) {
		t.Fatal("store holds the password")
	}
	u, err := s.Authenticate(context.Background(), "admin", pw)
	if err != nil || u != (User{Name: "admin", Admin: true}) {
		t.Fatalf("Authenticate(admin) = %v, %v", u, err)
	}
	// Second start: nothing to do, file untouched, and its path is given
	// again since the password in it still works.
	if created, again, err := s.EnsureAdmin(""); created || again != file || err != nil {
		t.Fatalf("second EnsureAdmin = %v, %q, %v", created, again, err)
	}
	if again, _ := os.ReadFile(file); !bytes.Equal(again, data) {
		t.Fatal("second EnsureAdmin changed the password file")
	}
	// Changing another user's password leaves the file.
	mustAdd(t, s, "bob", "pw", false)
	if err := s.SetPassword("bob", "pw2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("password file gone after another user's change: %v", err)
	}
	// Changing the admin's password makes the file stale: it goes.
	if err := s.SetPassword("admin", "chosen"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("password file still there after the change: %v", err)
	}
	if _, err := s.Authenticate(context.Background(), "admin", "chosen"); err != nil {
		t.Fatal(err)
	}
	if created, again, err := s.EnsureAdmin(""); created || again != "" || err != nil {
		t.Fatalf("EnsureAdmin after the change = %v, %q, %v", created, again, err)
	}
	if strings.Contains(logs.String(), "chosen") {
		t.Fatal("log holds the new password")
	}
}

func TestEnsureAdminGiven(t *testing.T) {
	dir := t.TempDir()
	// A stale file from an earlier bootstrap goes when a configured
	// password is used.
	stale := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(stale, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, Options{})
	if _, _, err := s.EnsureAdmin("bad pass"); !errors.Is(err, ErrInvalidPassword) {
		t.Fatalf("EnsureAdmin(invalid) = %v", err)
	}
	created, file, err := s.EnsureAdmin("configured")
	if err != nil || !created || file != "" {
		t.Fatalf("EnsureAdmin = %v, %q, %v", created, file, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale password file kept: %v", err)
	}
	if _, err := s.Authenticate(context.Background(), "admin", "configured"); err != nil {
		t.Fatal(err)
	}
	if created, _, _ := s.EnsureAdmin("other"); created {
		t.Fatal("EnsureAdmin created a second time")
	}
	if _, err := s.Authenticate(context.Background(), "admin", "configured"); err != nil {
		t.Fatal("EnsureAdmin changed an existing admin's password")
	}
}

func TestEnsureAdminExisting(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s, "root", "pw", true)
	if created, _, err := s.EnsureAdmin(""); created || err != nil {
		t.Fatalf("EnsureAdmin with an admin present = %v, %v", created, err)
	}
	if _, err := s.Lookup("admin"); !errors.Is(err, ErrNotFound) {
		t.Fatal("admin created although root is an admin")
	}

	// No admin, but "admin" is an ordinary account: refuse to take it over.
	s2 := openTest(t, t.TempDir(), Options{})
	mustAdd(t, s2, "admin", "pw", false)
	if created, _, err := s2.EnsureAdmin(""); created || !errors.Is(err, ErrExists) {
		t.Fatalf("EnsureAdmin over a non-admin admin = %v, %v", created, err)
	}
	if _, err := os.Stat(s2.PasswordFile()); !os.IsNotExist(err) {
		t.Fatal("password file written although nothing was created")
	}
}

func TestDeleteBootstrapAdminRemovesFile(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	if _, _, err := s.EnsureAdmin(""); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, "root", "pw", true)
	if err := s.Delete("admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.PasswordFile()); !os.IsNotExist(err) {
		t.Fatalf("password file kept after the bootstrap admin was deleted: %v", err)
	}
}

// TestTwoStores opens two Stores on one directory, as the server and
// `buzon user` in two processes would, and checks they never lose each
// other's changes and see them at the next call.
func TestTwoStores(t *testing.T) {
	dir := t.TempDir()
	s1 := openTest(t, dir, Options{})
	s2 := openTest(t, dir, Options{})
	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s1.Add(fmt.Sprintf("one%d", i), "pw", false); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := s2.Add(fmt.Sprintf("two%d", i), "pw", false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, s := range []*Store{s1, s2} {
		if c, err := s.Count(); err != nil || c != 2*n {
			t.Fatalf("Count = %d, %v; want %d", c, err, 2*n)
		}
	}
	// Both try to add the same name: exactly one wins.
	errs := make(chan error, 2)
	for _, s := range []*Store{s1, s2} {
		wg.Go(func() { errs <- s.Add("same", "pw", false) })
	}
	wg.Wait()
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, ErrExists) || errors.Is(e2, ErrExists)) {
		t.Fatalf("concurrent Add of one name: %v, %v", e1, e2)
	}

	ctx := context.Background()
	if err := s2.SetPassword("one3", "changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Authenticate(ctx, "one3", "changed"); err != nil {
		t.Fatalf("s1 does not see s2's password change: %v", err)
	}
	if err := s1.Delete("two4"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Lookup("two4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("s2 still sees the user s1 deleted: %v", err)
	}
	if _, err := s2.Authenticate(ctx, "two4", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("s2 authenticates the user s1 deleted: %v", err)
	}
}

func TestRereadOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	s1 := openTest(t, dir, Options{})
	s2 := openTest(t, dir, Options{})
	mustAdd(t, s1, "bob", "pw", false)
	if _, err := s1.Lookup("bob"); err != nil {
		t.Fatal(err)
	}
	before := s1.loads.Load()
	for range 50 {
		if _, err := s1.Lookup("bob"); err != nil {
			t.Fatal(err)
		}
		if _, err := s1.List(); err != nil {
			t.Fatal(err)
		}
	}
	if got := s1.loads.Load(); got != before {
		t.Fatalf("%d re-reads of an unchanged store", got-before)
	}
	// Same size, same inode count: a password change by another Store
	// (bcrypt hashes all have one length) is still noticed.
	if err := s2.SetPassword("bob", "qq"); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Authenticate(context.Background(), "bob", "qq"); err != nil {
		t.Fatalf("change by the other store not seen: %v", err)
	}
	if got := s1.loads.Load(); got != before+1 {
		t.Fatalf("%d re-reads after one change, want 1", got-before)
	}
	// Removing the file empties the store.
	if err := os.Remove(filepath.Join(dir, "users.json")); err != nil {
		t.Fatal(err)
	}
	if n, err := s1.Count(); n != 0 || err != nil {
		t.Fatalf("Count after removal = %d, %v", n, err)
	}
}

func TestConcurrentAddAuthenticate(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxConcurrentChecks: 4})
	ctx := context.Background()
	const workers, per = 8, 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				name := fmt.Sprintf("w%du%d", w, i)
				pw := "pw-" + name
				if err := s.Add(name, pw, i == 0); err != nil {
					t.Error(err)
					return
				}
				if u, err := s.Authenticate(ctx, name, pw); err != nil || u.Name != name {
					t.Errorf("Authenticate(%s) = %v, %v", name, u, err)
				}
				if _, err := s.Authenticate(ctx, name, "wrong"); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("wrong password for %s: %v", name, err)
				}
				if _, err := s.Authenticate(ctx, "ghost"+name, pw); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("ghost: %v", err)
				}
				if _, err := s.List(); err != nil {
					t.Error(err)
				}
				if i%3 == 2 {
					if err := s.SetPassword(name, pw+"x"); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	// Readers running all along.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for range 300 {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Count(); err != nil {
					t.Error(err)
				}
				_, _ = s.Lookup("w0u0")
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if n, err := s.Count(); n != workers*per || err != nil {
		t.Fatalf("Count = %d, %v; want %d", n, err, workers*per)
	}
	// A fresh Store reads back exactly what was written.
	fresh := openTest(t, s.Dir(), Options{})
	if n, _ := fresh.Count(); n != workers*per {
		t.Fatalf("fresh Count = %d", n)
	}
}
