//go:build interop

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// smtpServer starts buzon with TLS and two users.
func smtpServer(t *testing.T) *testserver.Server {
	t.Helper()
	ts := testserver.Start(t, testserver.Options{TLS: true})
	ts.AddUser(t, "alice", "alice-pw1")
	ts.AddUser(t, "bob", "bob-pw2")
	return ts
}

// newMail lists the files in user's new/ (their content).
func newMail(t *testing.T, ts *testserver.Server, user string) []string {
	t.Helper()
	return fileContents(t, filepath.Join(ts.DataDir, "mail", user, "new"))
}

// fileContents returns the contents of the files in dir, in directory
// order; a missing dir has none.
func fileContents(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// containsMail waits until one of user's messages contains marker.
func containsMail(t *testing.T, ts *testserver.Server, user, marker string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range newMail(t, ts, user) {
			if strings.Contains(m, marker) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %q for %s", marker, user)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

func TestSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (Debian package swaks)")
	}
	ts := smtpServer(t)
	cases := []struct {
		name    string
		args    []string
		ok      bool
		user    string
		with    string // protocol name expected in Received
		errLike string
	}{
		{"plain", []string{"--server", ts.SMTP, "--from", "x@remote.test", "--to", "alice@example.test"}, true, "alice", "with ESMTP id", ""},
		{"unknown", []string{"--server", ts.SMTP, "--from", "x@remote.test", "--to", "nobody@example.test"}, false, "", "", "5.1.1"},
		{"relay", []string{"--server", ts.SMTP, "--from", "x@remote.test", "--to", "x@elsewhere.test"}, false, "", "", "5.7.1"},
		{"auth-plain", []string{"--server", ts.Submission, "--from", "alice@example.test", "--to", "bob@example.test",
			"--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice-pw1"}, true, "bob", "with ESMTPA id", ""},
		{"auth-login-starttls", []string{"--server", ts.Submission, "--tls", "--from", "alice@example.test", "--to", "bob@example.test",
			"--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "alice-pw1"}, true, "bob", "with ESMTPSA id", ""},
		{"implicit-tls", []string{"--server", ts.SMTPTLS, "--tls-on-connect", "--from", "bob@example.test", "--to", "alice@example.test",
			"--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bob-pw2"}, true, "alice", "with ESMTPSA id", ""},
		{"bad-password", []string{"--server", ts.Submission, "--from", "alice@example.test", "--to", "bob@example.test",
			"--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong"}, false, "", "", "535"},
		{"submission-no-auth", []string{"--server", ts.Submission, "--from", "alice@example.test", "--to", "bob@example.test"}, false, "", "", "530"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			marker := fmt.Sprintf("swaks-%s-%d", tc.name, time.Now().UnixNano())
			args := append([]string{"--header", "Subject: " + marker, "--body", "body " + marker, "--timeout", "20"}, tc.args...)
			out, err := exec.Command(swaks, args...).CombinedOutput()
			if strings.Contains(string(out), "requires Net::SSLeay") {
				t.Skip("swaks TLS needs Debian package libnet-ssleay-perl")
			}
			if (err == nil) != tc.ok {
				t.Fatalf("swaks %v: err=%v\n%s", args, err, out)
			}
			if !tc.ok {
				if !strings.Contains(string(out), tc.errLike) {
					t.Fatalf("swaks output lacks %q:\n%s", tc.errLike, out)
				}
				return
			}
			m := containsMail(t, ts, tc.user, marker)
			if !strings.HasPrefix(m, "Return-Path: <") || !strings.Contains(m, tc.with) {
				t.Fatalf("trace headers wrong:\n%s", m)
			}
		})
	}
}

func TestMsmtp(t *testing.T) {
	msmtp, err := exec.LookPath("msmtp")
	if err != nil {
		t.Skip("msmtp not installed (Debian package msmtp)")
	}
	ts := smtpServer(t)
	dir := t.TempDir()
	host, port := hostPort(ts.SMTP)
	_, subPort := hostPort(ts.Submission)
	_, tlsPort := hostPort(ts.SMTPTLS)
	conf := fmt.Sprintf(`defaults
timeout 20
logfile -
tls_trust_file %[1]s

account plain
host %[2]s
port %[3]s
from x@remote.test
auth off
tls off

account auth
host %[2]s
port %[4]s
from alice@example.test
auth plain
user alice
password alice-pw1
tls off

account starttls
host %[2]s
port %[4]s
from alice@example.test
auth login
user alice
password alice-pw1
tls on
tls_starttls on

account smtps
host %[2]s
port %[5]s
from bob@example.test
auth plain
user bob
password bob-pw2
tls on
tls_starttls off

account badpw
host %[2]s
port %[4]s
from alice@example.test
auth plain
user alice
password nope
tls on
tls_starttls on
`, ts.Cert.CertFile, host, port, subPort, tlsPort)
	cfg := filepath.Join(dir, "msmtprc")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		account, to, user, with string
		ok                      bool
	}{
		{"plain", "alice@example.test", "alice", "with ESMTP id", true},
		{"auth", "bob@example.test", "bob", "with ESMTPA id", true},
		{"starttls", "bob@example.test", "bob", "with ESMTPSA id", true},
		{"smtps", "alice@example.test", "alice", "with ESMTPSA id", true},
		{"badpw", "bob@example.test", "", "", false},
		{"plain", "x@elsewhere.test", "", "", false},
	} {
		t.Run(tc.account+"-"+tc.to, func(t *testing.T) {
			marker := fmt.Sprintf("msmtp-%s-%d", tc.account, time.Now().UnixNano())
			cmd := exec.Command(msmtp, "-C", cfg, "-a", tc.account, tc.to)
			cmd.Stdin = strings.NewReader("Subject: " + marker + "\n\nbody " + marker + "\n")
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Fatalf("msmtp -a %s: err=%v\n%s", tc.account, err, out)
			}
			if tc.ok {
				m := containsMail(t, ts, tc.user, marker)
				if !strings.Contains(m, tc.with) {
					t.Fatalf("trace headers wrong:\n%s", m)
				}
			}
		})
	}
}
