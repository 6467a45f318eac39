package mgmt

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxLineLength is the longest MGMT line accepted, line end included (SPEC §7).
const MaxLineLength = 512

// Parse errors. None of them ends a session by itself; ten bad lines in a
// row do.
var (
	ErrEmptyLine    = errors.New("mgmt: empty line")
	ErrBadCharacter = errors.New("mgmt: control character or invalid UTF-8 in line")
	ErrBadCommand   = errors.New("mgmt: malformed command name")
)

// maxCommandName bounds the command word; the longest real one is 19 octets.
const maxCommandName = 32

// Parse splits one protocol line into its upper-cased command name and its
// arguments. The line may still carry its LF or CRLF end. Words are separated
// by one or more spaces; arguments keep their case (passwords). Parse is pure:
// it knows nothing about which commands exist or how many arguments they take.
func Parse(line string) (cmd string, args []string, err error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if !utf8.ValidString(line) {
		return "", nil, ErrBadCharacter
	}
	for i := 0; i < len(line); i++ {
		// Control characters (NUL, CR, TAB, DEL, ...) never appear in valid
		// commands: names and passwords exclude them (SPEC §6).
		if c := line[i]; c < 0x20 || c == 0x7f {
			return "", nil, ErrBadCharacter
		}
	}
	words := splitSpaces(line)
	if len(words) == 0 {
		return "", nil, ErrEmptyLine
	}
	name := words[0]
	if len(name) > maxCommandName {
		return "", nil, ErrBadCommand
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
			return "", nil, ErrBadCommand
		}
	}
	return strings.ToUpper(name), words[1:], nil
}

// splitSpaces splits on runs of ASCII spaces only (strings.Fields would also
// split on Unicode spaces, which a password may contain).
func splitSpaces(s string) []string {
	var out []string
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}
