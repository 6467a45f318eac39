package main

import (
	"strings"
	"testing"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// The "done when": the seed form against the real server.
func TestE2ESeedStatus(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	r := runWith(map[string]string{"BUZON_MGMT_ADDR": s.MGMT}, "1.0", "admin", s.AdminPassword, "-STATUS")
	if r.code != 0 || !strings.Contains(r.stdout, "\nTOTAL USERS: 1\n") || !strings.HasSuffix(r.stdout, "+OK GOODBYE\n") {
		t.Fatalf("got %d %q %q", r.code, r.stdout, r.stderr)
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
