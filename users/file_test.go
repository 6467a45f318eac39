package users

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// A real bcrypt hash (cost 4) of "pw".
const testHash = "$2a$04$pCaYu0eFZgQqG1V1EQjeYe/9aGkNPiBI6sxGL9vzrsnFvCl8PpH3S"

func TestDecode(t *testing.T) {
	rec := func(name string) string {
		return `{"name":"` + name + `","hash":"` + testHash + `"}`
	}
	tests := []struct {
		name string
		in   string
		ok   bool
		n    int
	}{
		{"empty store", `{"version":1,"users":[]}`, true, 0},
		{"null users", `{"version":1,"users":null}`, true, 0},
		{"one user", `{"version":1,"users":[` + rec("bob") + `]}`, true, 1},
		{"admin flags", `{"version":1,"users":[{"name":"admin","hash":"` + testHash + `","admin":true,"bootstrap":true}]}`, true, 1},
		{"two users", `{"version":1,"users":[` + rec("a") + `,` + rec("b") + `]}`, true, 2},
		{"empty file", ``, false, 0},
		{"truncated", `{"version":1,"users":[` + rec("bob"), false, 0},
		{"truncated mid hash", `{"version":1,"users":[{"name":"bob","hash":"$2a$04$pCa`, false, 0},
		{"null", `null`, false, 0},
		{"array", `[]`, false, 0},
		{"no version", `{"users":[]}`, false, 0},
		{"future version", `{"version":2,"users":[]}`, false, 0},
		{"unknown field", `{"version":1,"users":[],"extra":1}`, false, 0},
		{"unknown user field", `{"version":1,"users":[{"name":"bob","hash":"` + testHash + `","password":"x"}]}`, false, 0},
		{"trailing data", `{"version":1,"users":[]}{}`, false, 0},
		{"trailing garbage", `{"version":1,"users":[]}x`, false, 0},
		{"duplicate", `{"version":1,"users":[` + rec("bob") + `,` + rec("bob") + `]}`, false, 0},
		{"upper-case name", `{"version":1,"users":[` + rec("Bob") + `]}`, false, 0},
		{"traversal name", `{"version":1,"users":[` + rec("../x") + `]}`, false, 0},
		{"slash name", `{"version":1,"users":[` + rec("a/b") + `]}`, false, 0},
		{"NUL name", `{"version":1,"users":[` + rec(`a\u0000b`) + `]}`, false, 0},
		{"empty name", `{"version":1,"users":[` + rec("") + `]}`, false, 0},
		{"plaintext hash", `{"version":1,"users":[{"name":"bob","hash":"secret"}]}`, false, 0},
		{"empty hash", `{"version":1,"users":[{"name":"bob","hash":""}]}`, false, 0},
		{"no hash", `{"version":1,"users":[{"name":"bob"}]}`, false, 0},
		{"bad cost", `{"version":1,"users":[{"name":"bob","hash":"$2a$99$pCaYu0eFZgQqG1V1EQjeYe/9aGkNPiBI6sxGL9vzrsnFvCl8PpH3S"}]}`, false, 0},
		{"NUL byte", "{\"version\":1,\x00\"users\":[]}", false, 0},
		{"invalid UTF-8", "{\"version\":1,\"users\":[{\"name\":\"b\xffb\",\"hash\":\"" + testHash + "\"}]}", false, 0},
	}
	for _, tt := range tests {
		d, err := decode([]byte(tt.in))
		if tt.ok != (err == nil) {
			t.Errorf("%s: decode err = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if tt.ok && len(d) != tt.n {
			t.Errorf("%s: %d users, want %d", tt.name, len(d), tt.n)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	d := db{
		"bob":   {Name: "bob", Hash: testHash},
		"admin": {Name: "admin", Hash: testHash, Admin: true, Bootstrap: true},
		"a.b-c": {Name: "a.b-c", Hash: testHash, Admin: true},
	}
	data := encode(d)
	got, err := decode(data)
	if err != nil {
		t.Fatalf("decode(encode) = %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip = %v, want %v", got, d)
	}
	// Sorted, one account per line.
	if i, j := bytes.Index(data, []byte(`"a.b-c"`)), bytes.Index(data, []byte(`"bob"`)); i < 0 || j < i {
		t.Fatalf("not sorted:\n%s", data)
	}
	if n := strings.Count(string(data), "\n"); n != len(d)+2 {
		t.Fatalf("%d lines, want %d:\n%s", n, len(d)+2, data)
	}
	if got, err := decode(encode(db{})); err != nil || len(got) != 0 {
		t.Fatalf("empty round trip = %v, %v", got, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"users":[]}`))
	f.Add([]byte(`{"version":1,"users":[{"name":"bob","hash":"` + testHash + `","admin":true}]}`))
	f.Add(encode(db{"x": {Name: "x", Hash: testHash, Bootstrap: true}}))
	f.Add([]byte(`{"version":1,"users":[{"name":"../x","hash":"` + testHash + `"}]}`))
	f.Add([]byte(`{"version":1,"users":[{"name":"bob","hash":"$2a$04$`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decode(data)
		if err != nil {
			return
		}
		for n, r := range d {
			if got, err := Normalize(n); err != nil || got != n || r.Name != n {
				t.Fatalf("decoded invalid name %q", n)
			}
		}
		again, err := decode(encode(d))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("round trip changed %v to %v", d, again)
		}
	})
}
