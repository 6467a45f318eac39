package pop3

import (
	"errors"
	"strings"
)

// command is one parsed command line.
type command struct {
	verb string   // upper case
	args []string // space-separated arguments
	rest string   // everything after the verb and one space (PASS)
}

var (
	errEmpty    = errors.New("empty command")
	errBadChars = errors.New("invalid characters in command")
	errBadVerb  = errors.New("invalid command keyword")
)

// parseCommand parses a command line without its line end. RFC 1939 §3:
// a case-insensitive keyword of 3 or 4 printable characters, then
// arguments separated by spaces. Control characters (NUL included) are
// refused anywhere; bytes ≥ 0x80 only in arguments (passwords).
func parseCommand(line string) (command, error) {
	var c command
	if line == "" {
		return c, errEmpty
	}
	for i := 0; i < len(line); i++ {
		if b := line[i]; b < 0x20 || b == 0x7f {
			if b != '\t' {
				return c, errBadChars
			}
		}
	}
	verb, rest, _ := strings.Cut(line, " ")
	if len(verb) < 3 || len(verb) > 4 {
		return c, errBadVerb
	}
	for i := 0; i < len(verb); i++ {
		b := verb[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z') {
			return c, errBadVerb
		}
	}
	c.verb = strings.ToUpper(verb) // no allocation when already upper case
	c.rest = rest
	if n := countFields(rest); n > 0 {
		// One allocation of the right size, none for argument-less commands.
		c.args = make([]string, 0, n)
		for rest != "" {
			f, r, _ := strings.Cut(rest, " ")
			if f != "" {
				c.args = append(c.args, f)
			}
			rest = r
		}
	}
	return c, nil
}

// countFields counts the non-empty space-separated fields of s.
func countFields(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && (i == 0 || s[i-1] == ' ') {
			n++
		}
	}
	return n
}

// parseMsgNum parses an RFC 1939 message number: decimal digits only, no
// sign, at least 1. ok is false for anything else, and for huge numbers.
func parseMsgNum(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
