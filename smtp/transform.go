package smtp

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// transformPath is the PATH the command gets: fixed, never the server's.
const transformPath = "/usr/local/bin:/usr/bin:/bin"

// stderrLimit bounds how much of the command's stderr is logged.
const stderrLimit = 4096

// boundedBuffer keeps the first max bytes written and drops the rest.
type boundedBuffer struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf = append(b.buf, p[:room]...)
		}
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Exit codes of the transformation command that reject the message
// (sysexits.h EX_DATAERR, EX_NOUSER, EX_NOPERM).
func rejectingExit(code int) bool { return code == 65 || code == 67 || code == 77 }

// transform runs the command with in on stdin and streams its stdout,
// bounded by max_message_bytes, into out. The command is exec'd without a
// shell, in its own process group, which is killed on timeout, on
// oversize output, on shutdown and after it exits (no process is left
// behind). At most TransformMaxConcurrent run at once.
func (s *Server) transform(dyn *dynamic, in *os.File, out io.Writer, env []string, id string) (int64, error) {
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		return 0, errTempFailure
	}
	defer func() { <-s.sem }()

	ctx, cancel := context.WithTimeout(s.ctx, dyn.ttime)
	defer cancel()

	cmd := exec.Command(dyn.tcmd[0], dyn.tcmd[1:]...)
	cmd.Env = env
	cmd.Dir = os.TempDir()
	cmd.Stdin = in
	stderr := &boundedBuffer{max: stderrLimit}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait gives up on stdout/stderr held open by a stray process after
	// the group was killed (it cannot normally happen).
	cmd.WaitDelay = time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.log.Error("smtp transform pipe", "id", id, "err", err)
		return 0, errTempFailure
	}
	if err := cmd.Start(); err != nil {
		s.log.Error("smtp transform start", "id", id, "err", err)
		return 0, errTempFailure
	}
	pgid := cmd.Process.Pid
	// The group is signalled only while its leader is unreaped: until then
	// its pid (the group id) cannot be reused by an unrelated process.
	var (
		killMu sync.Mutex
		reaped bool
	)
	killGroup := func() {
		killMu.Lock()
		defer killMu.Unlock()
		if !reaped {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}
	stop := context.AfterFunc(ctx, killGroup)
	defer stop()

	limit := s.opts.MaxMessageBytes
	if limit <= 0 {
		limit = 1<<63 - 1
	}
	lim := &io.LimitedReader{R: stdout, N: limit + 1}
	n, copyErr := io.Copy(out, lim)
	oversize := lim.N <= 0
	if copyErr != nil || oversize {
		killGroup()
		io.Copy(io.Discard, stdout)
	}
	// Wait for the leader to exit without reaping it, kill whatever it left
	// in its group, then reap.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pgid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	killGroup()
	killMu.Lock()
	reaped = true
	killMu.Unlock()
	waitErr := cmd.Wait()
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)

	if msg := stderr.String(); msg != "" {
		s.log.Warn("smtp transform stderr", "id", id, "stderr", msg, "truncated", stderr.truncated)
	}
	switch {
	case timedOut:
		s.log.Warn("smtp transform timed out", "id", id, "timeout", dyn.ttime)
		return 0, errTempFailure
	case s.ctx.Err() != nil:
		return 0, errTempFailure
	case oversize:
		s.log.Warn("smtp transform output too large", "id", id, "limit", limit)
		return 0, errTempFailure
	case copyErr != nil:
		s.log.Error("smtp transform delivery write", "id", id, "err", copyErr)
		return 0, storageError(copyErr)
	}
	if waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) && rejectingExit(ee.ExitCode()) {
			s.log.Info("smtp transform rejected message", "id", id, "exit", ee.ExitCode())
			return 0, errRejected
		}
		s.log.Warn("smtp transform failed", "id", id, "err", waitErr)
		return 0, errTempFailure
	}
	return n, nil
}
