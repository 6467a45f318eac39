package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/buzon-mail/buzon/mgmt"
	"github.com/buzon-mail/buzon/mgmt/mgmttest"
)

type result struct {
	code           int
	stdout, stderr string
}

func runWith(env map[string]string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestSeedForm(t *testing.T) {
	h := mgmttest.Start(t, nil)
	h.Stats.Set(accounting.Stats{Historic: 4})
	env := map[string]string{"BUZON_MGMT_ADDR": h.Addr}

	r := runWith(env, "1.0", "admin", "secret", "-HISTORIC_CONNEC")
	want := mgmt.Greeting + "\n+OK USER\n+OK PASS\n+OK HISTORIC_CONNEC\nHISTORIC CONNECTIONS: 4\n+OK GOODBYE\n"
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Seed aliases and arguments; --addr wins over the environment.
	r = runWith(map[string]string{"BUZON_MGMT_ADDR": "127.0.0.1:1"}, "--addr", h.Addr, "1.0", "admin", "secret", "-MAX_CONNECTIONS", "5")
	if r.code != 0 || !strings.Contains(r.stdout, "+OK MAX_CONNEC\nMAX CONNECTIONS CHANGED SUCCESSFULLY\n+OK GOODBYE\n") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	if h.Runtime.MaxConnections() != 5 {
		t.Fatal("MAX_CONNECTIONS not applied")
	}
	r = runWith(env, "1.0", "admin", "secret", "-ADD_USER", "bob", "pw")
	if r.code != 0 || !strings.Contains(r.stdout, "USER ADDED SUCCESSFULLY") || !h.Mail.Has("bob") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// -ERR: exit 1, the -ERR line on stderr.
	r = runWith(env, "1.0", "admin", "secret", "-ADD_USER", "bob", "pw")
	if r.code != 1 || r.stderr != "-ERR USER ALREADY EXISTS\n" || !strings.HasSuffix(r.stdout, "+OK PASS\n+OK GOODBYE\n") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A wrong password is a -ERR too: the server's bare -ERR as received,
	// then what it means.
	r = runWith(env, "1.0", "admin", "wrong", "-STATUS")
	if r.code != 1 || r.stdout != mgmt.Greeting+"\n+OK USER\n+OK GOODBYE\n" || !strings.HasPrefix(r.stderr, "-ERR\nadmin_monitor: login refused") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Version mismatch: exit 2 with a clear message.
	r = runWith(env, "2.0", "admin", "secret", "-STATUS")
	if r.code != 2 || !strings.Contains(r.stderr, "version mismatch") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestHelpIsLocal(t *testing.T) {
	env := map[string]string{"BUZON_MGMT_ADDR": "127.0.0.1:1"} // nothing listens there
	for _, args := range [][]string{{"1.0", "admin", "pw", "-HELP"}, {"-HELP"}} {
		r := runWith(env, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "-MAX_CONNEC <n>") || !strings.Contains(r.stdout, "-CHANGE_PASSWORD <old> <new>") {
			t.Fatalf("%q: got %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := runWith(env, "--help")
	for _, want := range []string{"ADD_USER <name> <password>", "--password-file", "--json", "TRANSFORM [ON|OFF]", "Exit status"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("--help lacks %q: %d %q", want, r.code, r.stdout)
		}
	}
}

func TestModernForm(t *testing.T) {
	h := mgmttest.Start(t, nil)
	h.Stats.Set(accounting.Stats{Live: 3, BytesSent: 10, BytesReceived: 20})
	env := map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "secret"}

	r := runWith(env, "bytes_trans")
	if r.code != 0 || r.stdout != "+OK BYTES_TRANS\nBYTES SENT: 10\nBYTES RECEIVED: 20\n" {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Password from a file wins over the environment.
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("secret\n"), 0o600)
	r = runWith(map[string]string{"BUZON_MGMT_PASSWORD": "wrong"}, "--addr", h.Addr, "--password-file", pwFile, "LIVE_CONNEC")
	if r.code != 0 || r.stdout != "+OK LIVE_CONNEC\nLIVE CONNECTIONS: 3\n" {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runWith(env, "--user=admin", "MAX_USERS", "0")
	if r.code != 1 || r.stderr != "-ERR INVALID MAX USERS\n" {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runWith(map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "bad"}, "STATUS")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "login refused") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// TIMEOUT waits for the pause to end.
	start := time.Now()
	r = runWith(env, "TIMEOUT", "1")
	if r.code != 0 || r.stdout != "+OK TIMEOUT\nTIMEOUT COMPLETED\n" || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestJSON(t *testing.T) {
	h := mgmttest.Start(t, nil)
	h.Stats.Set(accounting.Stats{Historic: 12, BytesSent: 1 << 40})
	env := map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "secret"}

	r := runWith(env, "STATUS", "--json")
	if r.code != 0 {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	var got struct {
		Command string         `json:"command"`
		OK      bool           `json:"ok"`
		Fields  map[string]any `json:"fields"`
		Lines   []string       `json:"lines"`
		Error   *string        `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Command != "STATUS" || !got.OK || got.Error != nil || got.Lines == nil {
		t.Fatalf("%+v", got)
	}
	// Exactly SPEC §8's five keys, error null on success.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil || len(keys) != 5 || string(keys["error"]) != "null" {
		t.Fatalf("keys %v %v", keys, err)
	}
	if n, ok := got.Fields["HISTORIC CONNECTIONS"].(json.Number); !ok || n.String() != "12" {
		t.Fatalf("HISTORIC CONNECTIONS = %#v", got.Fields["HISTORIC CONNECTIONS"])
	}
	if n, ok := got.Fields["BYTES SENT"].(json.Number); !ok || n.String() != "1099511627776" {
		t.Fatalf("BYTES SENT = %#v", got.Fields["BYTES SENT"])
	}
	if got.Fields["TRANSFORMATIONS"] != "OFF" || len(got.Fields) != 20 {
		t.Fatalf("fields %v", got.Fields)
	}

	r = runWith(env, "--json", "USERS")
	if r.code != 0 || !strings.Contains(r.stdout, `"lines": [`+"\n"+`    "admin"`) || !strings.Contains(r.stdout, `"USER COUNT": 1`) {
		t.Fatalf("got %d %q", r.code, r.stdout)
	}
	r = runWith(env, "--json", "DELETE_USER", "ghost")
	if r.code != 1 || !strings.Contains(r.stdout, `"ok": false`) || !strings.Contains(r.stdout, `"error": "USER NOT FOUND"`) {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runWith(map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "bad"}, "--json", "STATUS")
	if r.code != 1 || !strings.Contains(r.stdout, `"error": "LOGIN REFUSED"`) || !strings.Contains(r.stderr, "login refused") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The seed form takes --json too, without echoing the dialog.
	r = runWith(env, "--json", "1.0", "admin", "secret", "-LIVE_CONNEC")
	if r.code != 0 || strings.Contains(r.stdout, "+OK") || !strings.Contains(r.stdout, `"LIVE CONNECTIONS": 0`) {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestUsageAndConnectionErrors(t *testing.T) {
	h := mgmttest.Start(t, nil)
	env := map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "secret"}
	noPW := map[string]string{"BUZON_MGMT_ADDR": h.Addr}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", env, nil, "no command"},
		{"unknown command", env, []string{"FROB"}, "unknown command"},
		{"unknown flag", env, []string{"--frob", "STATUS"}, "unknown flag"},
		{"missing argument", env, []string{"ADD_USER", "bob"}, "usage: ADD_USER"},
		{"extra argument", env, []string{"STATUS", "now"}, "usage: STATUS"},
		{"no password", noPW, []string{"STATUS"}, "no password"},
		{"missing password file", noPW, []string{"--password-file", "/nonexistent/pw", "STATUS"}, "password file"},
		{"short seed form", env, []string{"1.0", "admin", "-STATUS"}, "usage: admin_monitor <version>"},
		{"space in the seed password", env, []string{"1.0", "admin", "two words", "-STATUS"}, "cannot be empty or hold spaces"},
		{"space in the env password", map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "a b"}, []string{"STATUS"}, "cannot be empty or hold spaces"},
		{"control character in an argument", env, []string{"ADD_USER", "bob", "p\x01w"}, "control characters"},
		{"nothing listening", map[string]string{"BUZON_MGMT_PASSWORD": "x"}, []string{"--addr", "127.0.0.1:1", "STATUS"}, "connect to"},
		{"STLS without TLS", env, []string{"--tls", "STATUS"}, "STLS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runWith(tc.env, tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	cert := testcert.New(t)
	h := mgmttest.Start(t, func(c *mgmt.Config) { c.TLS = cert.Server; c.TrustLoopback = false })
	caFile := cert.CertFile
	env := map[string]string{"BUZON_MGMT_ADDR": h.Addr, "BUZON_MGMT_PASSWORD": "secret"}
	r := runWith(env, "STATUS")
	if r.code != 1 || !strings.Contains(r.stderr, "login refused") {
		t.Fatalf("plaintext: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runWith(env, "--tls", "--ca-file", caFile, "NOOP")
	if r.code != 0 || r.stdout != "+OK NOOP\n" {
		t.Fatalf("tls: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// An untrusted certificate is a connection error.
	r = runWith(env, "--tls", "NOOP")
	if r.code != 2 {
		t.Fatalf("untrusted: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestJSONValue(t *testing.T) {
	for _, tc := range []struct {
		key, v string
		want   any
	}{
		{"LIVE CONNECTIONS", "3", int64(3)},
		{"BYTES SENT", "9223372036854775807", int64(9223372036854775807)},
		{"BYTES SENT", "99999999999999999999", "99999999999999999999"}, // beyond int64: kept as text
		{"TRANSFORMATIONS", "ON", "ON"},
		{"X", "007", "007"},
		{"X", "+5", "+5"},
		{"X", "-0", "-0"},
		{"NEW PASSWORD", "12345678", "12345678"},
	} {
		if got := jsonValue(tc.key, tc.v); got != tc.want {
			t.Errorf("jsonValue(%q, %q) = %#v, want %#v", tc.key, tc.v, got, tc.want)
		}
	}
}
