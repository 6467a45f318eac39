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

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{BcryptCost: bcrypt.DefaultCost})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Add("bob", "correct-horse", false); err != nil {
		b.Fatal(err)
	}
	return s
}
