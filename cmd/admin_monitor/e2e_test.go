package main

import (
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// The "done when": the seed form against the real server.
func TestE2ESeedStatus(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	r := runWith(map[string]string{"BUZON_MGMT_ADDR": s.MGMT}, "1.0", "admin", s.AdminPassword, "-STATUS")
	if r.code != 0 || !strings.Contains(r.stdout, "\nTOTAL USERS: 1\n") || !strings.HasSuffix(r.stdout, "+OK GOODBYE\n") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A wrong password: the server's bare -ERR comes after the throttle's
	// delay (1 s for a first failure), and the exit status is 1.
	begin := time.Now()
	r = runWith(map[string]string{"BUZON_MGMT_ADDR": s.MGMT}, "1.0", "admin", "not-"+s.AdminPassword, "-STATUS")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "-ERR\n") || !strings.HasSuffix(r.stdout, "+OK USER\n+OK GOODBYE\n") {
		t.Fatalf("wrong password: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if el := time.Since(begin); el < 900*time.Millisecond {
		t.Fatalf("failed login answered after %v, without the delay", el)
	}
	s.WaitLog(t, `msg="mgmt auth failed" ip=127.0.0.1`, 5*time.Second)
	if strings.Contains(s.Log(), "not-"+s.AdminPassword) {
		t.Fatalf("log of the failed login:\n%s", s.Log())
	}
	r = runWith(map[string]string{"BUZON_MGMT_ADDR": s.MGMT, "BUZON_MGMT_PASSWORD": s.AdminPassword}, "--json", "ADD_USER", "erin", "erinpw")
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// --tls against the real server: STLS, then a login that plaintext would
// not be allowed (loopback is not trusted here).
func TestE2ETLS(t *testing.T) {
	s := testserver.Start(t, testserver.Options{TLS: true, YAML: "auth:\n  trust_loopback: false\n"})
	env := map[string]string{"BUZON_MGMT_ADDR": s.MGMT, "BUZON_MGMT_PASSWORD": s.AdminPassword}
	r := runWith(env, "NOOP")
	if r.code != 1 || !strings.Contains(r.stderr, "login refused") {
		t.Fatalf("plaintext: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runWith(env, "--tls", "--ca-file", s.Cert.CertFile, "LIVE_CONNEC")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "+OK LIVE_CONNEC\n") {
		t.Fatalf("tls: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
