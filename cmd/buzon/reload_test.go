package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
	"go.yaml.in/yaml/v3"
)

func smtpSession(t *testing.T, addr string) *testserver.LineConn {
	t.Helper()
	c := testserver.DialLine(t, addr)
	if g := c.Reply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q", g)
	}
	c.Cmd("EHLO client.test", "250")
	return c
}

func pop3Login(t *testing.T, addr, user, pw string) *testserver.LineConn {
	t.Helper()
	c := testserver.DialLine(t, addr)
	if g := c.Line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	c.Cmd("USER "+user, "+OK")
	c.Cmd("PASS "+pw, "+OK")
	return c
}

// rewriteConfig merges extra YAML into the server's config file.
func rewriteConfig(t *testing.T, s *testserver.Server, extra string) {
	t.Helper()
	raw, err := os.ReadFile(s.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg, add map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(extra), &add); err != nil {
		t.Fatal(err)
	}
	for k, v := range add {
		if sub, ok := v.(map[string]any); ok {
			if cur, ok := cfg[k].(map[string]any); ok {
				for kk, vv := range sub {
					cur[kk] = vv
				}
				continue
			}
		}
		cfg[k] = v
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the file whole, so that a reload never reads half of it.
	tmp := s.ConfigFile + ".new"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.ConfigFile); err != nil {
		t.Fatal(err)
	}
}

// reloadAndWait sends SIGHUP and waits for the n-th "configuration reloaded".
func reloadAndWait(t *testing.T, s *testserver.Server, n int) {
	t.Helper()
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reload", 10*time.Second, func() bool {
		return strings.Count(s.Log(), "configuration reloaded") >= n
	})
}

// newMessages lists the files in a user's new/.
func newMessages(t *testing.T, s *testserver.Server, user string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.DataDir, "mail", user, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestServeSIGHUPReachesServers checks that each reloadable key of SPEC §2
// reaches the running servers, and that run-time values keep winning.
func TestServeSIGHUPReachesServers(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "alice", "pw-alice")
	m := s.MGMTLogin(t)
	// A run-time value set through MGMT.
	testserver.MGMTReply(t, m, "MAX_USERS 7")
	m.Cmd("TRANSFORM ON", "-ERR NO TRANSFORM COMMAND CONFIGURED")

	c := smtpSession(t, s.SMTP)
	c.Cmd("MAIL FROM:<x@remote.test>", "250")
	c.Cmd("RCPT TO:<alice@new.test>", "550")
	c.Cmd("RCPT TO:<sales@example.test>", "550")
	c.Cmd("QUIT", "221")

	marker := filepath.Join(t.TempDir(), "ran")
	rewriteConfig(t, s, `
domains: [example.test, new.test]
aliases: {sales: alice, postmaster: admin}
limits: {max_connections: 50, max_users: 99, max_connections_per_ip: 1}
transform:
  command: ["/bin/sh", "-c", "touch `+marker+`; echo 'X-Transformed: yes'; cat"]
  timeout: 5s
`)
	reloadAndWait(t, s, 1)

	st := testserver.MGMTStatus(t, m)
	if st["MAX CONNECTIONS"] != "50" {
		t.Errorf("MAX CONNECTIONS after reload = %q, want the new config's 50", st["MAX CONNECTIONS"])
	}
	if st["MAX USERS"] != "7" {
		t.Errorf("MAX USERS after reload = %q, want the run-time 7", st["MAX USERS"])
	}
	// transform.command reached MGMT: TRANSFORM ON now works.
	if got := testserver.MGMTReply(t, m, "TRANSFORM ON"); len(got) != 1 || got[0] != "TRANSFORMATIONS: ON" {
		t.Fatalf("TRANSFORM ON after reload: %q", got)
	}
	m.Cmd("QUIT", "+OK")

	// domains and aliases reached SMTP; transform.command too.
	c = smtpSession(t, s.SMTP)
	// limits.max_connections_per_ip is now 1: a second connection is refused.
	second := testserver.DialLine(t, s.SMTP)
	if g := second.Reply(); !strings.HasPrefix(g, "421") {
		t.Errorf("second connection with max_connections_per_ip 1: %q", g)
	}
	c.Cmd("MAIL FROM:<x@remote.test>", "250")
	c.Cmd("RCPT TO:<alice@new.test>", "250")
	c.Cmd("RCPT TO:<sales@example.test>", "250")
	c.Cmd("DATA", "354")
	c.Send("Subject: hi\r\n\r\nbody\r\n.")
	c.Expect("250")
	c.Cmd("QUIT", "221")
	msgs := newMessages(t, s, "alice")
	if len(msgs) == 0 {
		t.Fatal("nothing delivered to alice")
	}
	for _, m := range msgs {
		body, _ := os.ReadFile(m)
		if !strings.Contains(string(body), "X-Transformed: yes") {
			t.Errorf("message not transformed after reload:\n%s", body)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("transformation command did not run: %v", err)
	}

	// transform.timeout reaches SMTP: a slow command now times out.
	rewriteConfig(t, s, `
transform: {command: ["/bin/sleep", "30"], timeout: 1s}
limits: {max_connections_per_ip: 20}
`)
	reloadAndWait(t, s, 2)
	c = smtpSession(t, s.SMTP)
	c.Cmd("MAIL FROM:<x@remote.test>", "250")
	c.Cmd("RCPT TO:<alice@new.test>", "250")
	c.Cmd("DATA", "354")
	c.Send("Subject: slow\r\n\r\nbody\r\n.")
	start := time.Now()
	c.Expect("451")
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("transformation cut after %s, want about the reloaded 1s", d)
	}
	c.Cmd("QUIT", "221")
}

// TestServeReloadReportsRestartKeys: keys that are not reloadable keep their
// running value and the log names them.
func TestServeReloadReportsRestartKeys(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	rewriteConfig(t, s, `
hostname: other.test
shutdown_grace: 1s
smtp: {max_message_bytes: 1000}
auth: {allow_insecure: true}
transform: {max_concurrent: 2, enabled: true, command: [cat]}
`)
	reloadAndWait(t, s, 1)
	for _, k := range []string{"hostname", "shutdown_grace", "smtp.max_message_bytes", "auth.allow_insecure", "transform.max_concurrent", "transform.enabled"} {
		if !strings.Contains(s.Log(), "needs a restart, keeping the old value\" key="+k) {
			t.Errorf("change of %s not reported as needing a restart:\n%s", k, s.Log())
		}
	}
	c := smtpSession(t, s.SMTP)
	c.Send("EHLO again.test")
	var size string
	for {
		l := c.Line()
		if strings.Contains(l, "SIZE") {
			size = l
		}
		if l[3] == ' ' {
			break
		}
	}
	if !strings.Contains(size, "26214400") {
		t.Errorf("SIZE changed without a restart: %q", size)
	}
	m := s.MGMTLogin(t)
	if st := testserver.MGMTStatus(t, m); st["TRANSFORMATIONS"] != "OFF" {
		t.Errorf("transform.enabled applied without a restart: TRANSFORMATIONS %q", st["TRANSFORMATIONS"])
	}
	if strings.Contains(s.Log(), "key=transform.command") {
		t.Errorf("transform.command reported as needing a restart:\n%s", s.Log())
	}
}

// TestServeShutdownGrace: after SIGTERM new connections are refused, open
// sessions may finish within shutdown_grace, then are cut; a cut POP3
// session applies no deletion.
func TestServeShutdownGrace(t *testing.T) {
	s := testserver.Start(t, testserver.Options{YAML: "shutdown_grace: 3s\n"})
	s.AddUser(t, "alice", "pw-alice")
	c := smtpSession(t, s.SMTP)
	c.Cmd("MAIL FROM:<x@remote.test>", "250")
	c.Cmd("RCPT TO:<alice@example.test>", "250")
	c.Cmd("DATA", "354")
	c.Send("Subject: one\r\n\r\nfirst\r\n.")
	c.Expect("250")

	p := pop3Login(t, s.POP3, "alice", "pw-alice")
	p.Cmd("DELE 1", "+OK")

	// An SMTP transaction in progress when the signal comes.
	c.Cmd("MAIL FROM:<x@remote.test>", "250")
	c.Cmd("RCPT TO:<alice@example.test>", "250")

	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "msg=stopping", 10*time.Second)
	waitFor(t, "listeners closed", 10*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", s.POP3, time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})

	// The SMTP session finishes its message within the grace.
	c.Cmd("DATA", "354")
	c.Send("Subject: two\r\n\r\nsecond\r\n.")
	c.Expect("250")

	// The POP3 session, which never sends QUIT, is cut at the latest when
	// the grace ends.
	if !p.ClosedByPeer(10 * time.Second) {
		t.Fatal("POP3 session still open long after shutdown_grace")
	}
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("server still running after shutdown_grace")
	}
	if n := len(newMessages(t, s, "alice")) + curCount(t, s, "alice"); n != 2 {
		t.Fatalf("alice has %d messages after the cut session, want 2 (no deletion applied)", n)
	}
}

func curCount(t *testing.T, s *testserver.Server, user string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.DataDir, "mail", user, "cur", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// TestUserChangesSeenByRunningServer: `buzon user` works on the store while
// a server runs, and the server sees each change at the next login.
func TestUserChangesSeenByRunningServer(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "dave", "pw-one")
	p := pop3Login(t, s.POP3, "dave", "pw-one")
	p.Cmd("QUIT", "+OK")

	if out, err := s.Run("pw-two\n", "user", "passwd", "dave", "--password-stdin"); err != nil {
		t.Fatalf("passwd: %v %s", err, out)
	}
	p = testserver.DialLine(t, s.POP3)
	p.Line()
	p.Cmd("USER dave", "+OK")
	p.Cmd("PASS pw-one", "-ERR")
	p.Cmd("QUIT", "+OK")
	p = pop3Login(t, s.POP3, "dave", "pw-two")
	p.Cmd("QUIT", "+OK")

	if out, err := s.Run("", "user", "del", "dave"); err != nil {
		t.Fatalf("del: %v %s", err, out)
	}
	p = testserver.DialLine(t, s.POP3)
	p.Line()
	p.Cmd("USER dave", "+OK")
	p.Cmd("PASS pw-two", "-ERR")
}

// TestResetRuntimeWhileRunning: reset-runtime clears state.json and tells
// that a running server applies it at its next SIGHUP; after the SIGHUP the
// configuration applies, without a restart.
func TestResetRuntimeWhileRunning(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	m := s.MGMTLogin(t)
	testserver.MGMTReply(t, m, "MAX_CONNEC 42")
	out, _ := s.Run("", "config", "print")
	if !regexpLine(out, "limits.max_connections", "42", "runtime") {
		t.Errorf("config print does not show the run-time value:\n%s", out)
	}
	out, err := s.Run("", "config", "reset-runtime")
	if err != nil {
		t.Fatalf("reset-runtime: %v %s", err, out)
	}
	if !strings.Contains(out, "answers on "+s.MGMT) || !strings.Contains(out, "SIGHUP") {
		t.Errorf("no note about the running server: %q", out)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "state.json")); !os.IsNotExist(err) {
		t.Fatalf("state.json still there: %v", err)
	}
	if st := testserver.MGMTStatus(t, m); st["MAX CONNECTIONS"] != "42" {
		t.Errorf("MAX CONNECTIONS before SIGHUP = %q, want the held 42", st["MAX CONNECTIONS"])
	}
	reloadAndWait(t, s, 1)
	if st := testserver.MGMTStatus(t, m); st["MAX CONNECTIONS"] != "1000" {
		t.Errorf("MAX CONNECTIONS after reset and SIGHUP = %q, want the configured 1000", st["MAX CONNECTIONS"])
	}
	m.Cmd("QUIT", "+OK")
	out, _ = s.Run("", "config", "print")
	if strings.Contains(out, "runtime") {
		t.Errorf("config print still shows run-time values:\n%s", out)
	}
	// Nothing writes the old value back: a restart keeps the configuration.
	s.Restart(t)
	m = s.MGMTLogin(t)
	if st := testserver.MGMTStatus(t, m); st["MAX CONNECTIONS"] != "1000" {
		t.Errorf("MAX CONNECTIONS after restart = %q, want 1000", st["MAX CONNECTIONS"])
	}
}

// TestServePortInUse: a listener that cannot bind stops the start with an
// error naming the protocol and address, and exit status 1.
func TestServePortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bin := testserver.Binary(t)
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"-s", "127.0.0.1:0", "-p", "127.0.0.1:0", "--pop3-listen", busy.Addr().String())
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if want := "buzon: pop3 listen " + busy.Addr().String() + ": "; !strings.Contains(string(out), want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
}

// TestServeReloadLog: log.file, log.format and log.level change on SIGHUP.
func TestServeReloadLog(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	logFile := filepath.Join(t.TempDir(), "buzon.log")
	rewriteConfig(t, s, "log: {file: "+logFile+", format: json, level: warn}\n")
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first reload", 10*time.Second, func() bool {
		_, err := os.Stat(logFile)
		return err == nil
	})
	// At level warn the reload itself is not logged; a warning is.
	rewriteConfig(t, s, "hostname: moved.test\n")
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "JSON warning in the new log file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"level":"WARN","msg":"reload: this change needs a restart, keeping the old value","key":"hostname"`)
	})
	b, _ := os.ReadFile(logFile)
	if strings.Contains(string(b), `"level":"INFO"`) {
		t.Errorf("info lines at level warn:\n%s", b)
	}
}

// TestServeReloadTimeouts: limits.idle_timeout and limits.login_timeout
// reach SMTP, POP3 and MGMT on SIGHUP.
func TestServeReloadTimeouts(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	rewriteConfig(t, s, "limits: {idle_timeout: 1s, login_timeout: 1s}\n")
	reloadAndWait(t, s, 1)
	c := smtpSession(t, s.SMTP)
	p := testserver.DialLine(t, s.POP3)
	p.Line()
	m := testserver.DialLine(t, s.MGMT)
	m.Line()
	for name, conn := range map[string]*testserver.LineConn{"smtp idle": c, "pop3 login": p, "mgmt login": m} {
		if !conn.ClosedByPeer(10 * time.Second) {
			t.Errorf("%s: not closed within 10 s of a 1 s timeout", name)
		}
	}
}

// TestQuickStart is `make run` on a fresh checkout: the example config, data
// under ./var, the first admin password in var/admin-password (0600, the
// log says where, never what), directories 0700; the password logs in to
// MGMT, and changing it removes the file.
func TestQuickStart(t *testing.T) {
	example, err := filepath.Abs("../../buzon.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(testserver.Binary(t), "serve", "--config", example,
		"-s", "127.0.0.1:0", "-p", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0")
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BUZON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	log := &lockedWriter{b: &bytes.Buffer{}}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	waitFor(t, "start", 20*time.Second, func() bool { return strings.Contains(log.String(), "buzon started") })
	if !strings.Contains(log.String(), `its password is in the file" file=var/admin-password`) {
		t.Fatalf("the log does not say where the admin password is:\n%s", log.String())
	}
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{"var", 0o700}, {"var/mail", 0o700}, {"var/mail/admin", 0o700}, {"var/admin-password", 0o600}, {"var/users.json", 0o600}} {
		fi, err := os.Stat(filepath.Join(dir, p.path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != p.mode {
			t.Errorf("%s: mode %o, want %o", p.path, fi.Mode().Perm(), p.mode)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, "var", "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimSpace(string(raw))
	if strings.Contains(log.String(), pw) {
		t.Fatal("the admin password is in the log")
	}
	var mgmtAddr string
	for _, l := range strings.Split(log.String(), "\n") {
		if _, rest, ok := strings.Cut(l, "protocol=mgmt addr="); ok {
			mgmtAddr, _, _ = strings.Cut(rest, " ")
		}
	}
	login := func(pw, want string) {
		t.Helper()
		m := testserver.DialLine(t, mgmtAddr)
		m.Line()
		m.Cmd("USER admin", "+OK USER")
		m.Cmd("PASS "+pw, want)
	}
	login(pw, "+OK PASS")

	user := exec.Command(testserver.Binary(t), "user", "passwd", "admin", "--password-stdin", "--config", example)
	user.Dir, user.Env, user.Stdin = dir, cmd.Env, strings.NewReader("N3w-pass\n")
	if out, err := user.CombinedOutput(); err != nil {
		t.Fatalf("user passwd: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "var", "admin-password")); !os.IsNotExist(err) {
		t.Errorf("admin-password not removed after the change: %v", err)
	}
	login("N3w-pass", "+OK PASS")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
