// Package testserver runs the real `buzon serve` binary as a child process
// for end-to-end tests: free loopback ports for every listener, a temporary
// data directory, and helpers to add users, kill and restart it.
package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/buzon-mail/buzon/internal/testcert"

	"github.com/buzon-mail/buzon/internal/testlog"
)

// Options shape the server a test starts.
type Options struct {
	// YAML is extra configuration, deep-merged over the generated one.
	YAML string
	// Env is extra environment for the server (KEY=VALUE).
	Env []string
	// TLS adds a certificate, smtp.tls_listen and pop3.tls_listen.
	TLS bool
	// NoWait skips waiting for the listeners (for tests of failing starts).
	NoWait bool
}

// Server is a running buzon child process.
type Server struct {
	Bin, DataDir, ConfigFile string
	// Listener addresses (host:port); SMTPTLS and POP3TLS only with TLS.
	SMTP, Submission, SMTPTLS, POP3, POP3TLS, MGMT string
	AdminPassword                                  string
	Cert                                           *testcert.Cert

	opts Options
	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *testlog.Buffer
	done chan struct{}
}

// buildOnce caches the binary for the life of the test process: building it
// per test would cost seconds each time.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

// Binary returns the path of a `buzon` binary: $BUZON_BIN when set (the
// Makefile sets it), else one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BUZON_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildOnce.err = err
			return
		}
		dir, err := os.MkdirTemp("", "buzon-testbin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "buzon")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, "./cmd/buzon")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// freePorts returns n distinct loopback addresses whose ports were free a
// moment ago. All n listeners stay open until every port is chosen: closing
// each at once would let the kernel hand the same port out twice.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// Start writes a configuration, starts `buzon serve` and waits until every
// listener accepts. The server is stopped when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		Bin:     Binary(t),
		DataDir: filepath.Join(t.TempDir(), "data"),
		opts:    opts,
		t:       t,
	}
	// Every listener gets its own port, TLS ones included when asked for.
	ports := freePorts(t, 6)
	s.SMTP, s.Submission, s.POP3, s.MGMT = ports[0], ports[1], ports[2], ports[3]
	pw := make([]byte, 9)
	if _, err := rand.Read(pw); err != nil {
		t.Fatal(err)
	}
	s.AdminPassword = "Adm" + hex.EncodeToString(pw)

	cfg := map[string]any{
		"hostname":       "mx.buzon.test",
		"domains":        []any{"example.test", "localhost"},
		"data_dir":       s.DataDir,
		"shutdown_grace": "5s",
		"smtp": map[string]any{
			"listen":            s.SMTP,
			"submission_listen": s.Submission,
		},
		"pop3": map[string]any{"listen": s.POP3},
		"mgmt": map[string]any{"listen": s.MGMT},
		"log":  map[string]any{"level": "debug"},
	}
	if opts.TLS {
		s.Cert = testcert.New(t)
		s.SMTPTLS, s.POP3TLS = ports[4], ports[5]
		cfg["tls"] = map[string]any{"cert_file": s.Cert.CertFile, "key_file": s.Cert.KeyFile}
		cfg["smtp"].(map[string]any)["tls_listen"] = s.SMTPTLS
		cfg["pop3"].(map[string]any)["tls_listen"] = s.POP3TLS
	}
	if opts.YAML != "" {
		var extra map[string]any
		if err := yaml.Unmarshal([]byte(opts.YAML), &extra); err != nil {
			t.Fatalf("testserver: extra YAML: %v", err)
		}
		merge(cfg, extra)
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.ConfigFile = filepath.Join(t.TempDir(), "buzon.yaml")
	if err := os.WriteFile(s.ConfigFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	s.start(t)
	return s
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// Addrs lists every configured listener address.
func (s *Server) Addrs() []string {
	var a []string
	for _, x := range []string{s.SMTP, s.Submission, s.SMTPTLS, s.POP3, s.POP3TLS, s.MGMT} {
		if x != "" {
			a = append(a, x)
		}
	}
	return a
}

func (s *Server) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BUZON_") {
			env = append(env, kv)
		}
	}
	env = append(env, "BUZON_ADMIN_PASSWORD="+s.AdminPassword)
	return append(env, s.opts.Env...)
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	if s.out == nil {
		s.out = &testlog.Buffer{}
	}
	cmd := exec.Command(s.Bin, "serve", "--config", s.ConfigFile)
	cmd.Env = s.env()
	cmd.Stdout = s.out
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		t.Fatalf("testserver: start: %v", err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	if s.opts.NoWait {
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range s.Addrs() {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("testserver: buzon exited before %s accepted:\n%s", addr, s.Log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("testserver: %s not accepting after 20s:\n%s", addr, s.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Done is closed when the current server process has exited.
func (s *Server) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// PID of the current server process.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Kill ends the server with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL, 10*time.Second) }

// Stop ends the server with SIGTERM, waits for it (killing it after 15 s).
func (s *Server) Stop() {
	if !s.signalAndWait(syscall.SIGTERM, 15*time.Second) {
		s.Kill()
	}
}

// Signal sends sig to the running server.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("not running")
	}
	return s.cmd.Process.Signal(sig)
}

func (s *Server) signalAndWait(sig syscall.Signal, wait time.Duration) bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// Restart starts the server again (after Kill or Stop) on the same ports
// and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// AddUser creates an account with `buzon user add NAME --password-stdin`.
func (s *Server) AddUser(t testing.TB, name, password string) {
	t.Helper()
	if out, err := s.Run(password+"\n", "user", "add", name, "--password-stdin"); err != nil {
		t.Fatalf("testserver: user add %s: %v\n%s", name, err, out)
	}
}

// Run runs another buzon subcommand against this server's config.
func (s *Server) Run(stdin string, args ...string) (string, error) {
	args = append(args, "--config", s.ConfigFile)
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = s.env()
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Log is everything the server wrote so far (all runs).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// WaitLog waits until the log contains substr.
func (s *Server) WaitLog(t testing.TB, substr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(s.Log(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("testserver: log has no %q after %v:\n%s", substr, within, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
