package config

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzLoad feeds random YAML to the loader: it must return a config or an
// error, never panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("hostname: a.test\ndomains: [a.test]\n"))
	f.Add([]byte("smtp:\n  listen: ['127.0.0.1:25', '[::1]:25']\n  max_recipients: 5\n"))
	f.Add([]byte("aliases:\n  info: [bob, ann]\n  x.y: bob\n"))
	f.Add([]byte("transform:\n  command: \"tr 'a b' c\"\n  enabled: true\n"))
	f.Add([]byte("limits: {idle_timeout: 1m, max_users: 1e3}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("smtp: {listen: {a: b}}\n"))
	f.Add([]byte("aliases: {1: 2, null: ~}\n"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{Hostname: fixedHost, NoRuntime: true}
		cfg, meta, _, err := load(opts, "fuzz.yaml", data)
		if err == nil && (cfg == nil || meta == nil) {
			t.Fatal("nil config without error")
		}
	})
}

// FuzzSplitCommand: never panics, and quoting its words again with single
// quotes splits back to the same words.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"", "a b", `'a b' "c\"d" e\ f`, `"\$x"`, "a\\\nb", `'`, `"\`, "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := SplitCommand(s)
		if err != nil {
			return
		}
		q := make([]string, len(argv))
		for i, a := range argv {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		again, err := SplitCommand(strings.Join(q, " "))
		if err != nil || !reflect.DeepEqual(again, argv) && !(len(again) == 0 && len(argv) == 0) {
			t.Fatalf("%q → %q → %q (%v)", s, argv, again, err)
		}
	})
}
