package users

import (
	"crypto/rand"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest user name accepted (SPEC §6).
const MaxNameLen = 64

// MaxPasswordLen is bcrypt's input limit: it ignores bytes past 72, so longer
// passwords are refused rather than silently truncated.
const MaxPasswordLen = 72

// reserved names are delivered through aliases (postmaster: RFC 5321 §4.5.1,
// abuse: RFC 2142 §2), so no account may take them.
var reserved = map[string]bool{"postmaster": true, "abuse": true}

// Normalize lower-cases a user name and validates it (ErrInvalidUsername):
// `[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?` and never "..". Only ASCII letters
// are folded; any other byte is refused before folding, so that e.g. the
// Kelvin sign (which strings.ToLower maps to "k") cannot alias "kelvin".
// A valid name is always a safe single path element: it has no '/', NUL, or
// leading dot and is never "." or "..".
func Normalize(name string) (string, error) {
	n := len(name)
	if n == 0 || n > MaxNameLen {
		return "", ErrInvalidUsername
	}
	var buf [MaxNameLen]byte
	b := buf[:n]
	for i := 0; i < n; i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-':
			if i == 0 || i == n-1 {
				return "", ErrInvalidUsername
			}
			if c == '.' && b[i-1] == '.' {
				return "", ErrInvalidUsername
			}
		default:
			return "", ErrInvalidUsername
		}
		b[i] = c
	}
	return string(b), nil
}

// ValidPassword checks SPEC §6's password rule (ErrInvalidPassword): 1 to 72
// bytes of valid UTF-8 with no spaces and no control characters (MGMT
// commands are space-separated lines, and such characters cannot be typed
// reliably in mail clients anyway).
func ValidPassword(pw string) error {
	if len(pw) == 0 || len(pw) > MaxPasswordLen || !utf8.ValidString(pw) {
		return ErrInvalidPassword
	}
	for _, r := range pw {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return ErrInvalidPassword
		}
	}
	return nil
}

// passwordAlphabet leaves out characters easily confused when read aloud or
// copied from a terminal (0/O/o, 1/l/I).
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// randomPasswordLen characters of a 56-symbol alphabet give about 116 bits.
const randomPasswordLen = 20

// RandomPassword returns a new random password that passes ValidPassword,
// drawn from crypto/rand without modulo bias.
func RandomPassword() string {
	const n = len(passwordAlphabet)
	// Largest multiple of n that fits in a byte: values at or above it are
	// rejected so every symbol is equally likely.
	const limit = 256 - 256%n
	out := make([]byte, 0, randomPasswordLen)
	var buf [64]byte
	for len(out) < randomPasswordLen {
		// crypto/rand.Read never fails on supported platforms (it panics
		// rather than return short output).
		_, _ = rand.Read(buf[:])
		for _, c := range buf {
			if int(c) < limit && len(out) < randomPasswordLen {
				out = append(out, passwordAlphabet[int(c)%n])
			}
		}
	}
	return string(out)
}
