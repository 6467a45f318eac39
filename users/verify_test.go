package users

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// countingStore opens a store whose bcrypt comparisons are counted and whose
// verification cache runs on a clock the test moves.
type countingStore struct {
	*Store
	mu    sync.Mutex
	calls int
	clock time.Time
}

func openCounting(t *testing.T, dir string, opts Options) *countingStore {
	t.Helper()
	cs := &countingStore{Store: openTest(t, dir, opts), clock: time.Unix(1_800_000_000, 0)}
	cs.compare = func(hash, pw []byte) error {
		cs.mu.Lock()
		cs.calls++
		cs.mu.Unlock()
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	if cs.verified != nil {
		cs.verified.now = func() time.Time {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			return cs.clock
		}
	}
	return cs
}

func (cs *countingStore) advance(d time.Duration) {
	cs.mu.Lock()
	cs.clock = cs.clock.Add(d)
	cs.mu.Unlock()
}

// login authenticates and returns whether it succeeded and how many bcrypt
// comparisons it took.
func (cs *countingStore) login(t *testing.T, name, pw string) (bool, int) {
	t.Helper()
	cs.mu.Lock()
	cs.calls = 0
	cs.mu.Unlock()
	_, err := cs.Authenticate(context.Background(), name, pw)
	if err != nil && !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Authenticate(%q): %v", name, err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return err == nil, cs.calls
}

func mustSetPassword(t *testing.T, s *Store, name, pw string) {
	t.Helper()
	if err := s.SetPassword(name, pw); err != nil {
		t.Fatalf("SetPassword(%q): %v", name, err)
	}
}

func mustDelete(t *testing.T, s *Store, name string) {
	t.Helper()
	if err := s.Delete(name); err != nil {
		t.Fatalf("Delete(%q): %v", name, err)
	}
}

// step is one login of a scripted sequence and what it must give.
type step struct {
	do      func(t *testing.T, cs *countingStore) // optional action before the login
	name    string
	pw      string
	ok      bool
	bcrypts int
}

func runSteps(t *testing.T, cs *countingStore, steps []step) {
	t.Helper()
	for i, st := range steps {
		if st.do != nil {
			st.do(t, cs)
		}
		ok, n := cs.login(t, st.name, st.pw)
		if ok != st.ok || n != st.bcrypts {
			t.Fatalf("step %d: login(%q, %q) = ok %v with %d bcrypt comparisons; want ok %v with %d",
				i, st.name, st.pw, ok, n, st.ok, st.bcrypts)
		}
	}
}

func TestVerifyCache(t *testing.T) {
	ttl := DefaultVerifyCacheTTL
	long := strings.Repeat("p", MaxPasswordLen)
	tests := []struct {
		name  string
		steps []step
	}{
		{"a repeated success skips bcrypt", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{name: "bob", pw: "right", ok: true, bcrypts: 0},
			{name: "BOB", pw: "right", ok: true, bcrypts: 0}, // names are normalised first
		}},
		{"a wrong password always pays bcrypt", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{name: "bob", pw: "wrong", ok: false, bcrypts: 1},
			{name: "bob", pw: "wrong", ok: false, bcrypts: 1},
			{name: "bob", pw: "righ", ok: false, bcrypts: 1},
			{name: "bob", pw: "right", ok: true, bcrypts: 0},
		}},
		{"failures are not remembered", []step{
			{name: "nobody", pw: "right", ok: false, bcrypts: 1},
			{name: "nobody", pw: "right", ok: false, bcrypts: 1},
			{name: "bob", pw: "wrong", ok: false, bcrypts: 1},
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
		}},
		{"one account's entry does not vouch for another", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{name: "carol", pw: "right", ok: false, bcrypts: 1},
		}},
		{"expiry is fixed at the bcrypt check", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{do: func(t *testing.T, cs *countingStore) { cs.advance(ttl / 2) }, name: "bob", pw: "right", ok: true, bcrypts: 0},
			{do: func(t *testing.T, cs *countingStore) { cs.advance(ttl / 2) }, name: "bob", pw: "right", ok: true, bcrypts: 1},
			{name: "bob", pw: "right", ok: true, bcrypts: 0},
		}},
		{"a password change here forgets the old one", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{do: func(t *testing.T, cs *countingStore) { mustSetPassword(t, cs.Store, "bob", "newer") }, name: "bob", pw: "right", ok: false, bcrypts: 1},
			{name: "bob", pw: "newer", ok: true, bcrypts: 1},
			{name: "bob", pw: "newer", ok: true, bcrypts: 0},
		}},
		{"delete and re-add with the same password checks again", []step{
			{name: "bob", pw: "right", ok: true, bcrypts: 1},
			{do: func(t *testing.T, cs *countingStore) { mustDelete(t, cs.Store, "bob") }, name: "bob", pw: "right", ok: false, bcrypts: 1},
			{do: func(t *testing.T, cs *countingStore) { mustAdd(t, cs.Store, "bob", "right", false) },
				name: "bob", pw: "right", ok: true, bcrypts: 1},
		}},
		{"a password of the maximum length is remembered", []step{
			{do: func(t *testing.T, cs *countingStore) { mustSetPassword(t, cs.Store, "bob", long) }, name: "bob", pw: long, ok: true, bcrypts: 1},
			{name: "bob", pw: long, ok: true, bcrypts: 0},
			// One octet more is never a valid password, whatever bcrypt
			// would say about its first 72.
			{name: "bob", pw: long + "x", ok: false, bcrypts: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := openCounting(t, t.TempDir(), Options{})
			mustAdd(t, cs.Store, "bob", "right", false)
			mustAdd(t, cs.Store, "carol", "other", false)
			runSteps(t, cs, tt.steps)
		})
	}
}

// TestVerifyCacheSeesOtherProcess: a password changed through another
// Store on the same directory (as `buzon user passwd` would) is no longer
// accepted from the cache.
func TestVerifyCacheSeesOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cs := openCounting(t, dir, Options{})
	mustAdd(t, cs.Store, "bob", "right", false)
	other := openTest(t, dir, Options{})
	runSteps(t, cs, []step{
		{name: "bob", pw: "right", ok: true, bcrypts: 1},
		{name: "bob", pw: "right", ok: true, bcrypts: 0},
		{do: func(t *testing.T, cs *countingStore) { mustSetPassword(t, other, "bob", "changed") }, name: "bob", pw: "right", ok: false, bcrypts: 1},
		{name: "bob", pw: "changed", ok: true, bcrypts: 1},
		{do: func(t *testing.T, cs *countingStore) { mustDelete(t, other, "bob") }, name: "bob", pw: "changed", ok: false, bcrypts: 1},
	})
}

func TestVerifyCacheDisabled(t *testing.T) {
	cs := openCounting(t, t.TempDir(), Options{VerifyCacheTTL: -1})
	mustAdd(t, cs.Store, "bob", "right", false)
	runSteps(t, cs, []step{
		{name: "bob", pw: "right", ok: true, bcrypts: 1},
		{name: "bob", pw: "right", ok: true, bcrypts: 1},
	})
}

func TestVerifyCacheBounded(t *testing.T) {
	cs := openCounting(t, t.TempDir(), Options{VerifyCacheSize: 2})
	names := []string{"u1", "u2", "u3", "u4"}
	for _, n := range names {
		mustAdd(t, cs.Store, n, "pw-"+n, false)
	}
	for i, n := range names {
		if ok, _ := cs.login(t, n, "pw-"+n); !ok {
			t.Fatalf("login %s failed", n)
		}
		cs.advance(time.Second) // distinct expiries: the oldest goes first
		if got, want := cs.verified.len(), min(i+1, 2); got != want {
			t.Fatalf("after %d logins the cache holds %d accounts, want %d", i+1, got, want)
		}
	}
	// The two most recent are remembered, the two oldest were evicted.
	runSteps(t, cs, []step{
		{name: "u4", pw: "pw-u4", ok: true, bcrypts: 0},
		{name: "u3", pw: "pw-u3", ok: true, bcrypts: 0},
		{name: "u1", pw: "pw-u1", ok: true, bcrypts: 1},
	})
}

// TestVerifyCacheBurst: concurrent logins of one account with the right
// password all succeed; the cache never lets a wrong one through.
func TestVerifyCacheBurst(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{MaxConcurrentChecks: 2})
	mustAdd(t, s, "bob", "right", false)
	var wg sync.WaitGroup
	for i := range 40 {
		pw := "right"
		if i%4 == 3 {
			pw = "wrong"
		}
		wg.Go(func() {
			_, err := s.Authenticate(context.Background(), "bob", pw)
			if (err == nil) != (pw == "right") {
				t.Errorf("Authenticate(bob, %q) = %v", pw, err)
			}
		})
	}
	wg.Wait()
}
