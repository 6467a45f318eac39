package maildir

import (
	"strings"
	"testing"
)

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M123456P4242R0123456789abcdef.mx,S=120,W=123",
		"1700000000.M123456P4242R0123456789abcdef.mx,S=120,W=123:2,S",
		"1700000000.M5P77.host,S=4:2,RS",  // Dovecot
		"1700000000.M5P77Q3.host,S=4,W=6", // Dovecot with counter
		"1700000000.V803I12M999999.mx",    // Postfix
		"1700000000.V803I12M999999.mx:2,",
		"1700000000.12345_1.host", // qmail
		"plain",
		".hidden",
		":2,S",
		",S=1",
		"x,S=,W=",
		"x,S=99999999999999999999,W=-1",
		"x,Q=1,S=2,W=3,Z",
		"1.M.x",
		"\x00\xff,W=1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, ok := parseName(name)
		if !ok {
			return
		}
		if p.id == "" || strings.Contains(p.id, ":") {
			t.Fatalf("id %q from %q", p.id, name)
		}
		if p.size < -1 || p.vsize < -1 || p.time < 0 {
			t.Fatalf("negative field in %+v", p)
		}
		if !strings.HasPrefix(name, p.id[:strings.IndexByte(p.id+",", ',')]) {
			t.Fatalf("id %q not a prefix of %q", p.id, name)
		}
		// The id is stable: the same message renamed with other flags,
		// or its id re-parsed, yields the same id.
		q, ok := parseName(p.id)
		if !ok || q.id != p.id || q.time != p.time {
			t.Fatalf("reparse of %q: %+v", p.id, q)
		}
		if r, _ := parseName(p.id + ":2,FRS"); r.id != p.id {
			t.Fatalf("flags changed id: %q vs %q", r.id, p.id)
		}
	})
}
