package smtp

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// sendOne runs one transaction and returns the reply to the end of data.
func sendOne(t *testing.T, addr, rcpt, body string) string {
	t.Helper()
	d := dial(t, addr)
	d.cmd("EHLO c", "250 ")
	r := d.transaction("sender@remote.test", rcpt, body, "")
	d.cmd("QUIT", "221 ")
	return r
}

// gone reports whether pid no longer runs (absent or a zombie).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

func TestTransform(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	t.Setenv("BUZON_ADMIN_PASSWORD", "server-secret-value")
	cases := []struct {
		name, body string
		want       string
		check      func(t *testing.T, msg string)
	}{
		{"upper", "exec tr a-z A-Z", "250 ", func(t *testing.T, m string) {
			if !strings.Contains(m, "SUBJECT: HI\n\nHELLO\n") || !strings.Contains(m, "Received: from c ([127.0.0.1])") {
				t.Errorf("not transformed or headers changed:\n%s", m)
			}
		}},
		{"exit1", "cat >/dev/null; echo oops >&2; exit 1", "451 4.3.0", nil},
		{"exit65", "cat >/dev/null; exit 65", "550 5.7.1", nil},
		{"exit67", "exit 67", "550 5.7.1", nil},
		{"exit77", "exit 77", "550 5.7.1", nil},
		{"timeout", "sleep 30 & echo $! > " + pidFile + "; wait", "451 4.3.0", nil},
		{"endless", "exec yes transformed", "451 4.3.0", nil},
		{"env", "cat >/dev/null; env", "250 ", func(t *testing.T, m string) {
			for _, want := range []string{"\nPATH=", "\nSENDER=sender@remote.test\n", "\nRECIPIENTS=bob@example.org\n", "\nCLIENT_ADDR=127.0.0.1\n"} {
				if !strings.Contains(m, want) {
					t.Errorf("environment lacks %q:\n%s", want, m)
				}
			}
			if strings.Contains(m, "server-secret-value") || strings.Contains(m, "BUZON_") || strings.Contains(m, "HOME=") {
				t.Errorf("server environment leaked:\n%s", m)
			}
		}},
	}
	h := start(t, func(o *Options) {
		o.TransformTimeout = 500 * time.Millisecond
		o.MaxMessageBytes = 64 << 10
	})
	h.transform.Store(true)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := script(t, dir, tc.name+".sh", tc.body)
			h.srv.Reload(Reloadable{
				Domains:          []string{"example.org"},
				Aliases:          map[string][]string{},
				IdleTimeout:      5 * time.Second,
				TransformCommand: []string{cmd},
				TransformTimeout: 500 * time.Millisecond,
			})
			before := len(h.messages(t, "bob"))
			r := sendOne(t, h.mx, "bob@example.org", simpleMsg)
			if !strings.HasPrefix(r, tc.want) {
				t.Fatalf("got %q, want %q", r, tc.want)
			}
			msgs := h.messages(t, "bob")
			if tc.want != "250 " {
				if len(msgs) != before || h.tmpFiles(t) != 0 {
					t.Fatalf("delivered or left in tmp after %q", r)
				}
				return
			}
			if len(msgs) != before+1 {
				t.Fatalf("not delivered")
			}
			tc.check(t, msgs[len(msgs)-1])
		})
	}
	// The sleeping command and its child are gone.
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitFor(t, "child of timed-out command to be killed", func() bool { return gone(pid) })
	if !strings.Contains(h.logs.String(), "stderr=\"oops\\n\"") {
		t.Errorf("stderr not logged")
	}
	// Nothing is left in the spool directory.
	if ents, _ := os.ReadDir(h.spoolRoot); len(ents) != 0 {
		t.Errorf("spool not empty: %v", ents)
	}
}

func TestTransformSwitchAndRetry(t *testing.T) {
	dir := t.TempDir()
	upper := script(t, dir, "upper.sh", "exec tr a-z A-Z")
	failing := script(t, dir, "fail.sh", "exit 3")
	rel := Reloadable{Domains: []string{"example.org"}, IdleTimeout: 5 * time.Second, TransformCommand: []string{failing}}
	h := start(t, func(o *Options) { o.Reloadable = rel })
	h.transform.Store(true)
	if r := sendOne(t, h.mx, "alice@example.org", simpleMsg); !strings.HasPrefix(r, "451 4.3.0") {
		t.Fatalf("got %q", r)
	}
	// The client's retry succeeds once the command is fixed (SIGHUP).
	rel.TransformCommand = []string{upper}
	h.srv.Reload(rel)
	if r := sendOne(t, h.mx, "alice@example.org", simpleMsg); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("retry got %q", r)
	}
	// Switched off (MGMT TRANSFORM OFF) in the middle of a session: the
	// message after it is not transformed.
	d := dial(t, h.mx)
	d.cmd("EHLO c", "250 ")
	d.transaction("s@remote.test", "alice@example.org", "first\r\n", "250 ")
	h.transform.Store(false)
	d.transaction("s@remote.test", "alice@example.org", "second\r\n", "250 ")
	m := strings.Join(h.messages(t, "alice"), "")
	if !strings.Contains(m, "\nFIRST\n") || !strings.Contains(m, "\nsecond\n") {
		t.Fatalf("switch not applied per message:\n%s", m)
	}
	if !strings.Contains(h.logs.String(), "transform=on") || !strings.Contains(h.logs.String(), "transform=off") {
		t.Error("accepted log lines lack the transform state")
	}
}

func TestTransformMaxConcurrent(t *testing.T) {
	dir := t.TempDir()
	// Fails if another instance is running at the same moment.
	cmd := script(t, dir, "one.sh", "mkdir "+filepath.Join(dir, "lock")+" || exit 3\nsleep 0.2\ncat\nrmdir "+filepath.Join(dir, "lock"))
	h := start(t, func(o *Options) {
		o.TransformMaxConcurrent = 1
		o.TransformCommand = []string{cmd}
	})
	h.transform.Store(true)
	errs := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() {
			err := sendMail(h.mx, "s@remote.test", []string{"alice@example.org"}, strings.NewReader(simpleMsg))
			if err != nil {
				errs <- err.Error()
				return
			}
			errs <- ""
		}()
	}
	for i := 0; i < 3; i++ {
		if e := <-errs; e != "" {
			t.Fatalf("concurrent send: %s", e)
		}
	}
	if n := len(h.messages(t, "alice")); n != 3 {
		t.Fatalf("%d delivered", n)
	}
}
