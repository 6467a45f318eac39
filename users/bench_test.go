package users

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// BenchmarkAuthenticate measures one successful password check at the
// production cost (bcrypt.DefaultCost).
func BenchmarkAuthenticate(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, "bob", "correct-horse"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateUnknown is the same for a user that does not exist:
// its ns/op should match BenchmarkAuthenticate's.
func BenchmarkAuthenticateUnknown(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, "nobody", "correct-horse"); err == nil {
			b.Fatal("unknown user authenticated")
		}
	}
}

// BenchmarkAuthenticateMinCost is a successful check at bcrypt.MinCost
// (2^4 rounds instead of 2^10): what remains is mostly the fixed part of
// a login (store lookup, locking, hashing set-up), apart from bcrypt's
// own work factor.
func BenchmarkAuthenticateMinCost(b *testing.B) {
	s := benchStoreCost(b, bcrypt.MinCost)
	ctx := context.Background()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, "bob", "correct-horse"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateRemembered is a repeated successful login at the
// production cost, answered by the verification cache after the first.
func BenchmarkAuthenticateRemembered(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Add("bob", "correct-horse", false); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Authenticate(ctx, "bob", "correct-horse"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Authenticate(ctx, "bob", "correct-horse"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B) *Store { return benchStoreCost(b, bcrypt.DefaultCost) }

func benchStoreCost(b *testing.B, cost int) *Store {
	b.Helper()
	// Nothing remembered: every iteration pays the full check.
	s, err := Open(b.TempDir(), Options{BcryptCost: cost, VerifyCacheTTL: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Add("bob", "correct-horse", false); err != nil {
		b.Fatal(err)
	}
	return s
}
