package mgmt

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		cmd  string
		args []string
		err  error
	}{
		{"NOOP\r\n", "NOOP", nil, nil},
		{"noop\n", "NOOP", nil, nil},
		{"Add_User bob PassW0rd\r\n", "ADD_USER", []string{"bob", "PassW0rd"}, nil},
		{"  USER   admin  ", "USER", []string{"admin"}, nil},
		{"PASS pässwörd", "PASS", []string{"pässwörd"}, nil},
		{"", "", nil, ErrEmptyLine},
		{"   \r\n", "", nil, ErrEmptyLine},
		{"NO\x00OP", "", nil, ErrBadCharacter},
		{"USER\tadmin", "", nil, ErrBadCharacter},
		{"NOOP\r\r\n", "", nil, ErrBadCharacter},
		{"\xff\xfe", "", nil, ErrBadCharacter},
		{"N00P", "", nil, ErrBadCommand},
		{"-STATUS", "", nil, ErrBadCommand},
		{strings.Repeat("A", 33), "", nil, ErrBadCommand},
	}
	for _, tc := range tests {
		cmd, args, err := Parse(tc.line)
		if !errors.Is(err, tc.err) || cmd != tc.cmd || !slices.Equal(args, tc.args) {
			t.Errorf("Parse(%q) = %q %q %v, want %q %q %v", tc.line, cmd, args, err, tc.cmd, tc.args, tc.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"NOOP\r\n", "USER admin", "PASS s3cret\n", "ADD_USER bob pw", "TRANSFORM on",
		"MAX_CONNEC 99999999999999999999", "", " ", "\x00", "\xff", "A B C D E F",
		strings.Repeat("x", 600), "STATUS\r", "timeout 10\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		cmd, args, err := Parse(line)
		if err != nil {
			if cmd != "" || args != nil {
				t.Fatalf("error with results: %q %q", cmd, args)
			}
			return
		}
		if cmd == "" || cmd != strings.ToUpper(cmd) || len(cmd) > maxCommandName {
			t.Fatalf("bad command %q", cmd)
		}
		for _, a := range args {
			if a == "" || strings.ContainsAny(a, " \r\n\x00") || !utf8.ValidString(a) {
				t.Fatalf("bad argument %q", a)
			}
		}
	})
}
