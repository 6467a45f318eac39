package benchsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// server is a `buzon serve` child process.
type server struct {
	bin, configFile, logFile string
	addrs                    []string // every listener, waited for at start

	cmd     *exec.Cmd
	out     bytes.Buffer // stdout+stderr: only start-up failures go there (log.file takes the rest)
	done    chan struct{}
	waitErr error // valid once done is closed
}

// Timeouts of the server's life cycle.
const (
	startDeadline = 20 * time.Second
	termGrace     = 10 * time.Second
)

// env is the parent's environment without BUZON_ variables: the bench
// configuration must be exactly what the file says.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BUZON_") {
			out = append(out, kv)
		}
	}
	return out
}

// addUser creates an account with `buzon user add NAME --password-stdin`,
// with the default bcrypt cost, as a real account is made.
func addUser(ctx context.Context, bin, configFile, name, password string) error {
	cmd := exec.CommandContext(ctx, bin, "user", "add", name, "--password-stdin", "--config", configFile)
	cmd.Env = env()
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("buzon user add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	return nil
}

// start runs `buzon serve` and waits until every listener accepts.
func (s *server) start(ctx context.Context) error {
	s.cmd = exec.Command(s.bin, "serve", "--config", s.configFile)
	s.cmd.Env = env()
	s.cmd.Stdout = &s.out
	s.cmd.Stderr = &s.out
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start buzon serve: %w", err)
	}
	s.done = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(startDeadline)
	for _, addr := range s.addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			if s.exited() {
				return fmt.Errorf("buzon serve exited before %s accepted (%v):\n%s", addr, s.waitErr, s.tail())
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("buzon serve: %s not accepting after %v:\n%s", addr, startDeadline, s.tail())
			}
			// A short poll while the server binds its listeners.
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for buzon serve: %w", ctx.Err())
			case <-s.done:
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// exited reports whether the process has ended.
func (s *server) exited() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop ends the server with SIGTERM, then SIGKILL after termGrace.
func (s *server) stop() error {
	if s.cmd == nil || s.done == nil {
		return nil
	}
	if s.exited() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(termGrace):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("buzon serve did not stop within %v of SIGTERM; killed", termGrace)
}

// died returns an error with the log tail when the server has exited on
// its own.
func (s *server) died() error {
	if !s.exited() {
		return nil
	}
	return fmt.Errorf("buzon serve exited (%v):\n%s", s.waitErr, s.tail())
}

// tailLines is how much of the log a failure report shows.
const tailLines = 30

// tail returns the last lines of the server's log file and its direct
// output.
func (s *server) tail() string {
	var b strings.Builder
	if s.logFile != "" {
		if t, err := fileTail(s.logFile, tailLines); err == nil && t != "" {
			b.WriteString(t)
		}
	}
	if s.exited() { // out is written only by the process, which has ended
		b.WriteString(lastLines(s.out.String(), tailLines))
	}
	if b.Len() == 0 {
		return "(no log output)"
	}
	return b.String()
}

// fileTail reads at most the last 64 KiB of path and returns its last n
// lines.
func fileTail(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const window = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(fi.Size()-window, 0)
	data, err := io.ReadAll(io.NewSectionReader(f, off, window))
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return lastLines(string(data), n), nil
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}
