package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/buzon-mail/buzon/internal/testserver"
	"github.com/buzon-mail/buzon/maildir"
	"golang.org/x/crypto/bcrypt"
)

// testGlobals: in-process commands hash passwords at the lowest bcrypt cost,
// which keeps the race-detector runs fast.
func testGlobals() *globals { return &globals{bcryptCost: bcrypt.MinCost} }

// runCmd executes the command tree in-process.
func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(testGlobals(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "buzon.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheckErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown key", "smtp:\n  listn: x\n", nil, nil, "smtp.listn: unknown key"},
		{"bad value", "smtp:\n  max_recipients: -3\n", nil, nil, "smtp.max_recipients: must be a positive integer"},
		{"tls_listen without tls", "pop3:\n  tls_listen: 127.0.0.1:995\n", nil, nil, "pop3.tls_listen: requires tls.cert_file"},
		{"bad env", "", map[string]string{"BUZON_LOG_FORMAT": "xml"}, nil, "log.format: must be one of text, json (from BUZON_LOG_FORMAT)"},
		{"bad flag", "", nil, []string{"-L", "loud"}, "log.level: must be one of"},
		{"missing file", "", nil, []string{"--config", "/nonexistent/buzon.yaml"}, "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"config", "check"}, tt.args...)
			if tt.yaml != "" {
				args = append(args, "--config", writeConfig(t, tt.yaml))
			}
			code, _, stderr := runCmd(t, "", args...)
			if code == 0 {
				t.Fatal("config check succeeded")
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr %q does not name %q", stderr, tt.want)
			}
		})
	}
}

func TestConfigCheckOKAndWarnings(t *testing.T) {
	t.Chdir(t.TempDir())
	code, out, stderr := runCmd(t, "", "config", "check", "--config", writeConfig(t, "limits:\n  idle_timeout: 1m\n"))
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("code %d out %q err %q", code, out, stderr)
	}
	if !strings.Contains(stderr, "warning: limits.idle_timeout") {
		t.Fatalf("no warning in %q", stderr)
	}
}

func TestExampleConfigValid(t *testing.T) {
	code, _, stderr := runCmd(t, "", "config", "check", "--config", "../../buzon.example.yaml")
	if code != 0 {
		t.Fatalf("buzon.example.yaml: %s", stderr)
	}
}

func TestConfigPrintSourcesAndMasking(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("BUZON_ADMIN_PASSWORD", "Sup3rSecret")
	t.Setenv("BUZON_LIMITS_MAX_USERS", "77")
	cfg := writeConfig(t, "hostname: file.example\nlimits:\n  max_users: 5\n  max_connections: 9\n")
	code, out, stderr := runCmd(t, "", "config", "print", "--config", cfg, "-s", "2626")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if strings.Contains(out, "Sup3rSecret") {
		t.Fatal("config print shows the admin password")
	}
	want := map[string][2]string{
		"hostname":               {"file.example", "file"},
		"limits.max_users":       {"77", "env"},
		"limits.max_connections": {"9", "file"},
		"smtp.listen":            {"[127.0.0.1:2626]", "flag"},
		"pop3.listen":            {"[127.0.0.1:1110]", "default"},
		"admin.password":         {"********", "env"},
	}
	lines := strings.Split(out, "\n")
	for key, w := range want {
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) >= 3 && f[0] == key {
				found = true
				if f[1] != w[0] || f[len(f)-1] != w[1] {
					t.Errorf("%s: line %q, want value %s source %s", key, l, w[0], w[1])
				}
			}
		}
		if !found {
			t.Errorf("%s missing from:\n%s", key, out)
		}
	}
}

func TestConfigPrintRuntimeAndReset(t *testing.T) {
	t.Chdir(t.TempDir())
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "state.json"), []byte(`{"max_connections": 42}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "data_dir: "+data+"\n")
	code, out, stderr := runCmd(t, "", "config", "print", "--config", cfg)
	if code != 0 {
		t.Fatal(stderr)
	}
	if !strings.Contains(out, "limits.max_connections") || !regexpLine(out, "limits.max_connections", "42", "runtime") {
		t.Fatalf("runtime value not shown:\n%s", out)
	}
	if code, _, stderr := runCmd(t, "", "config", "reset-runtime", "--config", cfg); code != 0 {
		t.Fatal(stderr)
	}
	_, out, _ = runCmd(t, "", "config", "print", "--config", cfg)
	if !regexpLine(out, "limits.max_connections", "1000", "default") {
		t.Fatalf("after reset-runtime:\n%s", out)
	}
}

func regexpLine(out, key, value, src string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == key && f[1] == value && f[2] == src {
			return true
		}
	}
	return false
}

func TestRemovedVRFYFlag(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"serve", "-f"}, {"serve", "-f", "/etc/passwd"}, {"serve", "-f/tmp/x"}, {"serve", "-f=x"}, {"serve", "-d", "a.test", "-f./x"}} {
		code, _, stderr := runCmd(t, "", args...)
		if code == 0 || !strings.Contains(stderr, "VRFY") || !strings.Contains(stderr, "removed") {
			t.Errorf("%v: code %d stderr %q", args, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-v"}, {"--version"}, {"serve", "-v"}, {"serve", "--version"}} {
		code, out, stderr := runCmd(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "buzon ") {
			t.Errorf("%v: code %d out %q err %q", args, code, out, stderr)
		}
	}
}

func TestServeRejectsArgs(t *testing.T) {
	code, _, stderr := runCmd(t, "", "serve", "extra")
	if code == 0 || !strings.Contains(stderr, "no arguments") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

func TestUserCommands(t *testing.T) {
	t.Chdir(t.TempDir())
	data := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, "data_dir: "+data+"\n")
	c := func(stdin string, args ...string) (int, string, string) {
		return runCmd(t, stdin, append(args, "--config", cfg)...)
	}
	if code, out, stderr := c("pw-one\n", "user", "add", "Alice", "--password-stdin"); code != 0 || !strings.Contains(out, "alice") {
		t.Fatalf("add: %d %q %q", code, out, stderr)
	}
	if code, _, stderr := c("pw-two\n", "user", "add", "root", "--admin", "--password-stdin"); code != 0 {
		t.Fatalf("add admin: %s", stderr)
	}
	if fi, err := os.Stat(filepath.Join(data, "mail", "alice", "new")); err != nil || !fi.IsDir() {
		t.Fatalf("alice's maildir: %v", err)
	}
	if code, _, stderr := c("pw\n", "user", "add", "alice", "--password-stdin"); code == 0 || !strings.Contains(stderr, "exists") {
		t.Errorf("duplicate add: %d %q", code, stderr)
	}
	for _, bad := range []string{"../etc", "a b", "postmaster"} {
		if code, _, _ := c("pw\n", "user", "add", bad, "--password-stdin"); code == 0 {
			t.Errorf("add %q succeeded", bad)
		}
	}
	if code, _, stderr := c("has space\n", "user", "add", "bob", "--password-stdin"); code == 0 {
		t.Errorf("bad password accepted: %q", stderr)
	}
	if code, _, stderr := c("", "user", "add", "bob", "--password-stdin"); code == 0 || !strings.Contains(stderr, "no password") {
		t.Errorf("empty stdin: %d %q", code, stderr)
	}
	// Without --password-stdin and without a terminal: a clear refusal.
	if code, _, stderr := c("pw\n", "user", "add", "bob"); code == 0 || !strings.Contains(stderr, "--password-stdin") {
		t.Errorf("no terminal: %d %q", code, stderr)
	}
	code, out, _ := c("", "user", "list")
	if code != 0 || !strings.Contains(out, "alice\n") || !strings.Contains(out, "root\tadmin") {
		t.Fatalf("list: %q", out)
	}
	if strings.Contains(out, "pw-one") {
		t.Fatal("password listed")
	}
	if code, _, stderr := c("pw-three\n", "user", "passwd", "alice", "--password-stdin"); code != 0 {
		t.Fatalf("passwd: %s", stderr)
	}
	if code, _, stderr := c("pw\n", "user", "passwd", "nobody", "--password-stdin"); code == 0 || !strings.Contains(stderr, "not found") {
		t.Errorf("passwd unknown: %d %q", code, stderr)
	}
	if code, out, stderr := c("", "user", "del", "alice"); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("del: %d %q %q", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "mail", "alice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("alice's maildir still in mail/: %v", err)
	}
	archived, _ := filepath.Glob(filepath.Join(data, "deleted", "alice.*"))
	if len(archived) != 1 {
		t.Errorf("archive: %v", archived)
	}
	if code, _, _ := c("", "user", "del", "alice"); code == 0 {
		t.Error("second del succeeded")
	}
	_, out, _ = c("", "user", "list")
	if strings.Contains(out, "alice") {
		t.Errorf("alice still listed: %q", out)
	}
	raw, _ := os.ReadFile(filepath.Join(data, "users.json"))
	for _, pw := range []string{"pw-one", "pw-two", "pw-three"} {
		if bytes.Contains(raw, []byte(pw)) {
			t.Errorf("plaintext %q in the store", pw)
		}
	}
}

// --- `buzon serve` as a real process.

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeStopsOnSIGTERM(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.AddUser(t, "carol", "pw-carol")
	if out, err := s.Run("", "user", "list"); err != nil || !strings.Contains(out, "carol") {
		t.Fatalf("user list against a running server: %v %q", err, out)
	}
	for _, want := range []string{"protocol=smtp addr=" + s.SMTP, "protocol=pop3 addr=" + s.POP3, "protocol=mgmt addr=" + s.MGMT} {
		if !strings.Contains(s.Log(), want) {
			t.Errorf("no listener line %q in log:\n%s", want, s.Log())
		}
	}
	if strings.Contains(s.Log(), s.AdminPassword) {
		t.Fatal("admin password in the log")
	}
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("not stopped 15 s after SIGTERM")
	}
	if !strings.Contains(s.Log(), "msg=stopped") {
		t.Errorf("no clean stop in log:\n%s", s.Log())
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "counters.json")); err != nil {
		t.Errorf("counters not saved: %v", err)
	}
}

func TestServeExitStatus(t *testing.T) {
	bin := testserver.Binary(t)
	dir := t.TempDir()
	cfg := writeConfig(t, "data_dir: "+filepath.Join(dir, "data")+"\n"+
		"smtp: {listen: 127.0.0.1:0}\npop3: {listen: 127.0.0.1:0}\nmgmt: {listen: 127.0.0.1:0}\n")
	cmd := exec.Command(bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "BUZON_ADMIN_PASSWORD=Init1al")
	var log bytes.Buffer
	cmd.Stderr = &lockedWriter{b: &log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lw := cmd.Stderr.(*lockedWriter)
	waitFor(t, "start", 20*time.Second, func() bool { return strings.Contains(lw.String(), "buzon started") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, lw.String())
	}

	// A start with an invalid configuration fails, naming the key.
	bad := writeConfig(t, "limits: {max_users: none}\n")
	out, err := exec.Command(bin, "serve", "--config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "limits.max_users") {
		t.Fatalf("invalid config: %v %q", err, out)
	}
}

func TestServeSIGHUPInvalidKeepsRunning(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	good, err := os.ReadFile(s.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigFile, []byte("smtp:\n  listn: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "invalid configuration, keeping the old one", 10*time.Second)
	if !strings.Contains(s.Log(), "smtp.listn") {
		t.Errorf("reload error does not name the key:\n%s", s.Log())
	}
	select {
	case <-s.Done():
		t.Fatal("server exited after an invalid reload")
	default:
	}
	for _, addr := range s.Addrs() {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("%s after invalid reload: %v", addr, err)
		}
		c.Close()
	}
	// A valid change is applied; a listener change is reported as needing a restart.
	changed := strings.Replace(string(good), "level: debug", "level: info", 1) + "\n"
	changed = strings.Replace(changed, s.MGMT, "127.0.0.1:1", 1)
	if err := os.WriteFile(s.ConfigFile, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "configuration reloaded", 10*time.Second)
	if !strings.Contains(s.Log(), "key=mgmt.listen") {
		t.Errorf("listener change not reported:\n%s", s.Log())
	}
	if c, err := net.DialTimeout("tcp", s.MGMT, 2*time.Second); err != nil {
		t.Errorf("mgmt listener moved on reload: %v", err)
	} else {
		c.Close()
	}
}

func TestServeLogFileReopen(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "buzon.log")
	s := testserver.Start(t, testserver.Options{YAML: "log: {file: " + logFile + ", format: json}\n"})
	waitFor(t, "log file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return bytes.Contains(b, []byte(`"msg":"buzon started"`))
	})
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reopened log file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		return bytes.Contains(b, []byte("log file reopened"))
	})
}

func TestServeTLS(t *testing.T) {
	s := testserver.Start(t, testserver.Options{TLS: true})
	for _, want := range []string{"addr=" + s.SMTPTLS + " tls=true", "addr=" + s.POP3TLS + " tls=true"} {
		if !strings.Contains(s.Log(), want) {
			t.Errorf("no %q in log:\n%s", want, s.Log())
		}
	}
	// A new certificate is picked up on SIGHUP.
	cert2 := testcert.New(t)
	cfg, _ := os.ReadFile(s.ConfigFile)
	cfg = bytes.ReplaceAll(cfg, []byte(s.Cert.CertFile), []byte(cert2.CertFile))
	cfg = bytes.ReplaceAll(cfg, []byte(s.Cert.KeyFile), []byte(cert2.KeyFile))
	if err := os.WriteFile(s.ConfigFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, "configuration reloaded", 10*time.Second)
	conf := cert2.Client.Clone()
	c, err := tlsDial(s.POP3TLS, conf)
	if err != nil {
		t.Fatalf("TLS with the reloaded certificate: %v", err)
	}
	c.Close()
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func tlsDial(addr string, conf *tls.Config) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, conf)
}

func TestUserDelRefusals(t *testing.T) {
	t.Chdir(t.TempDir())
	data := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, "data_dir: "+data+"\n")
	c := func(stdin string, args ...string) (int, string, string) {
		return runCmd(t, stdin, append(args, "--config", cfg)...)
	}
	if code, _, stderr := c("pw\n", "user", "add", "boss", "--admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := c("pw\n", "user", "add", "frank", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := c("", "user", "del", "boss"); code == 0 || !strings.Contains(stderr, "admin") {
		t.Errorf("deleting the last admin: %d %q", code, stderr)
	}
	// A POP3 session holds frank's maildrop: del must refuse.
	mail, err := maildir.New(filepath.Join(data, "mail"), maildir.Options{Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	md, err := mail.Maildir("frank")
	if err != nil {
		t.Fatal(err)
	}
	lock, err := md.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := c("", "user", "del", "frank"); code == 0 || !strings.Contains(stderr, "POP3") {
		t.Errorf("del while locked: %d %q", code, stderr)
	}
	lock.Release()
	if code, _, stderr := c("", "user", "del", "frank"); code != 0 {
		t.Errorf("del after release: %q", stderr)
	}
}

func TestUserAddHostileInput(t *testing.T) {
	t.Chdir(t.TempDir())
	data := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, "data_dir: "+data+"\n")
	tests := []struct{ name, user, stdin string }{
		{"password with NUL", "bob", "a\x00b\n"},
		{"password over 72 bytes", "bob", strings.Repeat("x", 73) + "\n"},
		{"line with no end, over the read limit", "bob", strings.Repeat("y", 1<<20)},
		{"password invalid UTF-8", "bob", "pw\xff\n"},
		{"name with NUL", "bo\x00b", "pw\n"},
		{"name invalid UTF-8", "b\xffb", "pw\n"},
		{"name traversal", "../../x", "pw\n"},
		{"name overlong", strings.Repeat("a", 65), "pw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tt.stdin, "user", "add", tt.user, "--password-stdin", "--config", cfg)
			if code == 0 || stderr == "" {
				t.Fatalf("accepted: %d %q", code, stderr)
			}
		})
	}
	if _, out, _ := runCmd(t, "", "user", "list", "--config", cfg); strings.TrimSpace(out) != "" {
		t.Fatalf("accounts created: %q", out)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "mail"))
	if len(entries) != 0 {
		t.Fatalf("maildirs created: %v", entries)
	}
}

// A corrupt state.json stops the start and config check, naming the file;
// reset-runtime still works, and clears it.
func TestResetRuntimeRepairsCorruptState(t *testing.T) {
	t.Chdir(t.TempDir())
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "state.json"), []byte("{\"max_users\": \x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "data_dir: "+data+"\n")
	if code, _, stderr := runCmd(t, "", "config", "check", "--config", cfg); code == 0 || !strings.Contains(stderr, "state.json") {
		t.Fatalf("check with a corrupt state.json: %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "", "config", "reset-runtime", "--config", cfg); code != 0 {
		t.Fatalf("reset-runtime: %s", stderr)
	}
	if code, _, stderr := runCmd(t, "", "config", "check", "--config", cfg); code != 0 {
		t.Fatalf("check after reset: %s", stderr)
	}
}

// A flag error elsewhere is not mistaken for -f, even when a value starts
// with "-f".
func TestFlagErrorNotVRFY(t *testing.T) {
	t.Chdir(t.TempDir())
	code, _, stderr := runCmd(t, "", "serve", "-t", "-foo", "--no-such-flag")
	if code == 0 || strings.Contains(stderr, "VRFY") || !strings.Contains(stderr, "no-such-flag") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}
