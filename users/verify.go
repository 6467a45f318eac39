package users

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// Defaults of the verification cache.
const (
	// DefaultVerifyCacheTTL covers clients that poll every few minutes.
	DefaultVerifyCacheTTL = 10 * time.Minute
	// DefaultVerifyCacheSize matches the default limits.max_users.
	DefaultVerifyCacheSize = 10000
)

// verifyCache remembers, per account, that a password passed bcrypt
// against a given stored hash, so the next login with the same password
// within ttl costs an HMAC instead of tens of milliseconds of bcrypt.
//
// What it holds, and why that is safe enough:
//   - never a password: an HMAC-SHA256 of it under a key drawn at start,
//     kept only in memory and never written anywhere;
//   - only successes: a wrong password or an unknown name finds nothing
//     to match and takes the full bcrypt path, so online guessing costs
//     what it did;
//   - the stored hash it was checked against: a password change, a reset
//     or a delete-and-re-add gives a new hash (new salt), which misses, in
//     this process or after another process changed the store;
//   - an expiry fixed at the bcrypt check and not extended by hits, so a
//     remembered password is re-checked at least every ttl.
//
// A nil *verifyCache is a disabled one.
type verifyCache struct {
	key  [32]byte
	ttl  time.Duration
	size int
	now  func() time.Time

	mu sync.Mutex
	m  map[string]verified
}

type verified struct {
	hash    string // the stored bcrypt hash the password was checked against
	mac     proof
	expires time.Time
}

func newVerifyCache(ttl time.Duration, size int, now func() time.Time) (*verifyCache, error) {
	c := &verifyCache{ttl: ttl, size: size, now: now, m: make(map[string]verified)}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil, fmt.Errorf("users: verification cache key: %w", err)
	}
	return c, nil
}

// proof is what an entry holds for name and pw; Authenticate computes it
// once and hands it to match and remember. Zero when the cache is off.
type proof [sha256.Size]byte

func (c *verifyCache) proof(name string, pw []byte) (out proof) {
	if c == nil {
		return out
	}
	h := hmac.New(sha256.New, c.key[:])
	// The name is bound in as well, with its length first, so one
	// account's entry can never vouch for another's.
	fmt.Fprintf(h, "%d:%s:", len(name), name)
	h.Write(pw)
	h.Sum(out[:0])
	return out
}

// match reports whether the password behind mac passed bcrypt against
// hash for name within ttl.
func (c *verifyCache) match(name, hash string, mac proof) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	e, found := c.m[name]
	c.mu.Unlock()
	if !found || e.hash != hash || !c.now().Before(e.expires) {
		return false
	}
	return hmac.Equal(e.mac[:], mac[:])
}

// remember records that the password behind mac passed bcrypt against
// hash for name.
func (c *verifyCache) remember(name, hash string, mac proof) {
	if c == nil {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, found := c.m[name]; !found && len(c.m) >= c.size {
		c.evict(now)
	}
	c.m[name] = verified{hash: hash, mac: mac, expires: now.Add(c.ttl)}
}

// evict makes room: expired entries first, else the one closest to
// expiry. Linear, but only when the cache is full, and size is bounded.
func (c *verifyCache) evict(now time.Time) {
	var oldest string
	var oldestExp time.Time
	for n, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, n)
			continue
		}
		if oldest == "" || e.expires.Before(oldestExp) {
			oldest, oldestExp = n, e.expires
		}
	}
	if len(c.m) >= c.size && oldest != "" {
		delete(c.m, oldest)
	}
}

// forget drops name's entry (its password or the account changed here).
func (c *verifyCache) forget(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// len is the number of entries, for tests.
func (c *verifyCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
