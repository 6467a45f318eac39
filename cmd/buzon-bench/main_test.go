package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/loadgen"
	"github.com/buzon-mail/buzon/internal/testserver"
)

// execute runs the command tree in-process and returns its stdout.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestSMTPJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the buzon binary")
	}
	srv := testserver.Start(t, testserver.Options{})
	srv.AddUser(t, "u1", "secret12")
	out, err := execute(t, "smtp", "--addr", srv.SMTP, "-n", "6", "-s", "2000", "-c", "2",
		"--to", "u1@example.test", "--pid", "0", "--json", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	var rs []loadgen.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rs) != 1 || rs[0].Scenario != "smtp" || rs[0].Ops != 6 || rs[0].Bytes != 12000 || len(rs[0].Errors) != 0 {
		t.Fatalf("results: %+v", rs)
	}
	ents, _ := os.ReadDir(filepath.Join(srv.DataDir, "mail", "u1", "new"))
	if len(ents) != 6 {
		t.Errorf("new/ holds %d messages, want 6", len(ents))
	}

	// Refused recipients are counted, not a failure to run: exit 0.
	out, err = execute(t, "smtp", "--addr", srv.SMTP, "-n", "2", "-s", "500", "--to", "nobody@example.test", "--quiet")
	if err != nil || !strings.Contains(out, "550:2") {
		t.Errorf("unknown recipient: %v\n%s", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"smtp", "--addr", "127.0.0.1:1", "--quiet"},            // no --to
		{"pop3", "--addr", "127.0.0.1:1"},                       // no --user
		{"pop3-list", "--addr", "127.0.0.1:1", "--user", "u1"},  // no password anywhere
		{"disk", "--ops", "1"},                                  // no --dir
		{"conns", "--count", "0"},                               // nothing to do
		{"smtp", "--to", "a@b", "--size", "5", "--addr", "x:1"}, // below the minimal header
	} {
		t.Setenv("BUZON_BENCH_PASSWORD", "")
		if _, err := execute(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestParseAccount(t *testing.T) {
	t.Setenv("BUZON_BENCH_PASSWORD", "fromenv")
	tests := []struct {
		in   string
		want loadgen.Account
		ok   bool
	}{
		{"u1:pw", loadgen.Account{User: "u1", Pass: "pw"}, true},
		{"u1:p:w", loadgen.Account{User: "u1", Pass: "p:w"}, true},
		{"u1", loadgen.Account{User: "u1", Pass: "fromenv"}, true},
		{"u1:", loadgen.Account{}, false},
		{":pw", loadgen.Account{}, false},
	}
	for _, tt := range tests {
		got, err := parseAccount(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseAccount(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

func TestDisk(t *testing.T) {
	dir := t.TempDir()
	out, err := execute(t, "disk", "--dir", dir, "--ops", "5", "--workers", "2", "--quiet")
	if err != nil || !strings.Contains(out, "disk w=2 5x4KiB") {
		t.Errorf("%v\n%s", err, out)
	}
}
