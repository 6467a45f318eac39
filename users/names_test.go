package users

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	long64 := "a" + strings.Repeat("b", 62) + "c"
	tests := []struct {
		in   string
		want string // "" means ErrInvalidUsername
	}{
		{"bob", "bob"},
		{"Bob", "bob"},
		{"ADMIN", "admin"},
		{"a", "a"},
		{"7", "7"},
		{"a.b", "a.b"},
		{"a_b-c.d", "a_b-c.d"},
		{"a.-b", "a.-b"},
		{"a--b", "a--b"},
		{"postmaster", "postmaster"}, // reserved only for Add
		{long64, long64},
		{strings.ToUpper(long64), long64},
		{long64 + "d", ""}, // 65 characters
		{"", ""},
		{".", ""},
		{"..", ""},
		{"../x", ""},
		{"..x", ""},
		{"x/..", ""},
		{"a..b", ""},
		{"a...b", ""},
		{"a/b", ""},
		{"/etc", ""},
		{`a\b`, ""},
		{"a\x00b", ""},
		{"\x00", ""},
		{"bob\x00", ""},
		{".bob", ""},
		{"bob.", ""},
		{"-bob", ""},
		{"bob-", ""},
		{"_bob", ""},
		{"bob_", ""},
		{" bob", ""},
		{"bob ", ""},
		{"b ob", ""},
		{"bob\r\n", ""},
		{"bob\t", ""},
		{"bob@example.org", ""},
		{"bob+tag", ""},
		{"ñandú", ""},
		{"jürgen", ""},
		{"\u212Aelvin", ""}, // Kelvin sign: strings.ToLower makes it "k"
		{"adm\u0130n", ""},  // dotted capital I
		{"bob\xff", ""},     // invalid UTF-8
		{"\xc0\xae\xc0\xae", ""},
		{"%2e%2e", ""},
		{"*", ""},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.want == "" {
			if !errors.Is(err, ErrInvalidUsername) {
				t.Errorf("Normalize(%q) = %q, %v; want ErrInvalidUsername", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"bob", "Bob", "a.b", "a..b", "../x", "a/b", "a\x00b",
		"\u212Aelvin", strings.Repeat("a", 64), strings.Repeat("a", 65), "", ".", "x-", "ÄÖ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := Normalize(in)
		want := nameRE.MatchString(asciiLower(in)) && !strings.Contains(in, "..")
		if err != nil {
			if !errors.Is(err, ErrInvalidUsername) {
				t.Fatalf("Normalize(%q): unexpected error %v", in, err)
			}
			if want {
				t.Fatalf("Normalize(%q) refused a valid name", in)
			}
			return
		}
		if !want {
			t.Fatalf("Normalize(%q) = %q, accepted an invalid name", in, got)
		}
		if !nameRE.MatchString(got) || strings.Contains(got, "..") || len(got) > MaxNameLen {
			t.Fatalf("Normalize(%q) = %q breaks the rule", in, got)
		}
		if got != asciiLower(in) {
			t.Fatalf("Normalize(%q) = %q, want %q", in, got, asciiLower(in))
		}
		if again, err := Normalize(got); err != nil || again != got {
			t.Fatalf("Normalize not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func TestValidPassword(t *testing.T) {
	tests := []struct {
		pw string
		ok bool
	}{
		{"a", true},
		{"s3cret!#$%&'()*+,-./:;<=>?@[]^_`{|}~\"\\", true},
		{strings.Repeat("x", 72), true},
		{strings.Repeat("é", 36), true}, // 72 bytes
		{"contraseña", true},
		{"密码密码", true},
		{"", false},
		{strings.Repeat("x", 73), false},
		{strings.Repeat("é", 37), false}, // 37 characters, 74 bytes
		{"two words", false},
		{" lead", false},
		{"trail ", false},
		{"tab\there", false},
		{"line\r\nbreak", false},
		{"nul\x00byte", false},
		{"\x00", false},
		{"del\x7f", false},
		{"esc\x1b[0m", false},
		{"nbsp\u00a0x", false},
		{"nel\u0085x", false},
		{"ls\u2028x", false},
		{"ideo\u3000x", false},
		{"bad\xffutf8", false},
		{"\xed\xa0\x80", false}, // surrogate half
		{"rune\uFFFDerror", false},
	}
	for _, tt := range tests {
		err := ValidPassword(tt.pw)
		if tt.ok && err != nil {
			t.Errorf("ValidPassword(%q) = %v, want nil", tt.pw, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidPassword) {
			t.Errorf("ValidPassword(%q) = %v, want ErrInvalidPassword", tt.pw, err)
		}
	}
}

func FuzzValidPassword(f *testing.F) {
	for _, s := range []string{"a", "two words", "nul\x00", "é", strings.Repeat("x", 73), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if ValidPassword(pw) != nil {
			return
		}
		if len(pw) < 1 || len(pw) > MaxPasswordLen {
			t.Fatalf("accepted %d bytes", len(pw))
		}
		for i := 0; i < len(pw); i++ {
			if pw[i] <= ' ' || pw[i] == 0x7f {
				t.Fatalf("accepted %q with byte %#x", pw, pw[i])
			}
		}
		// MGMT splits on white space: a valid password is one field.
		if f := strings.Fields(pw); len(f) != 1 || f[0] != pw {
			t.Fatalf("accepted %q, which is not one field", pw)
		}
	})
}

func TestRandomPassword(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		pw := RandomPassword()
		if err := ValidPassword(pw); err != nil {
			t.Fatalf("RandomPassword() = %q: %v", pw, err)
		}
		if len(pw) != randomPasswordLen {
			t.Fatalf("RandomPassword() = %q, length %d", pw, len(pw))
		}
		if strings.Trim(pw, passwordAlphabet) != "" {
			t.Fatalf("RandomPassword() = %q has characters outside the alphabet", pw)
		}
		if seen[pw] {
			t.Fatalf("RandomPassword() repeated %q", pw)
		}
		seen[pw] = true
	}
	// Every symbol should turn up in 4000 draws (each is missed with
	// probability (55/56)^4000, about 1e-31).
	all := strings.Join(mapKeys(seen), "")
	for _, c := range passwordAlphabet {
		if !strings.ContainsRune(all, c) {
			t.Errorf("symbol %q never drawn", c)
		}
	}
	for _, c := range "0O1lI" {
		if strings.ContainsRune(passwordAlphabet, c) {
			t.Errorf("alphabet holds confusable %q", c)
		}
	}
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
