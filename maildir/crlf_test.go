package maildir

import (
	"strings"
	"testing"
)

// refCRLFSize is the definition of the CRLF form's size, octet by octet.
func refCRLFSize(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n':
			n += 2
			i++
		case s[i] == '\r' || s[i] == '\n':
			n += 2
		default:
			n++
		}
	}
	return n
}

func TestCRLFCounter(t *testing.T) {
	for _, in := range []string{"", "a", "\n", "\r", "\r\n", "\n\r", "\r\r\n\n", "a\rb\nc\r\nd", "x\r", strings.Repeat("ab\r\n.c\n\r", 100)} {
		for step := 1; step <= len(in)+1; step++ {
			var c crlfCounter
			for i := 0; i < len(in); i += step {
				c.count([]byte(in[i:min(i+step, len(in))]))
			}
			if got, want := c.finish(), refCRLFSize(in); got != want {
				t.Errorf("%q in pieces of %d: %d, want %d", in, step, got, want)
			}
		}
	}
}

func FuzzCRLFCounter(f *testing.F) {
	for _, s := range []string{"", "a\n", "\r", "a\r\nb\rc\n\r", "\r\r\r\n\n\n"} {
		f.Add(s, uint8(2))
	}
	f.Fuzz(func(t *testing.T, in string, split uint8) {
		step := int(split%16) + 1
		var c crlfCounter
		for i := 0; i < len(in); i += step {
			c.count([]byte(in[i:min(i+step, len(in))]))
		}
		if got, want := c.finish(), refCRLFSize(in); got != want {
			t.Fatalf("%q in pieces of %d: %d, want %d", in, step, got, want)
		}
	})
}

// BenchmarkCRLFSize counts the CRLF size of 4 MB of LF-ended text (what
// every delivery and every foreign file's sizing does).
func BenchmarkCRLFSize(b *testing.B) {
	in := []byte(strings.Repeat(strings.Repeat("x", 75)+"\n", 4_000_000/76))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var c crlfCounter
		for p := in; len(p) > 0; {
			k := min(len(p), 32<<10)
			c.count(p[:k])
			p = p[k:]
		}
		if c.finish() != int64(len(in)+len(in)/76) {
			b.Fatal("wrong count")
		}
	}
}
