package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the controlling and the terminal side of a new
// pseudo-terminal.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

func TestUserAddPromptsWithoutEcho(t *testing.T) {
	ptm, pts := openPTY(t)
	t.Chdir(t.TempDir())
	data := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, "data_dir: "+data+"\n")

	var out bytes.Buffer
	errw := &lockedWriter{b: &bytes.Buffer{}}
	done := make(chan int, 1)
	go func() { done <- run(testGlobals(), []string{"user", "add", "dave", "--config", cfg}, pts, &out, errw) }()

	waitFor(t, "first prompt", 10*time.Second, func() bool { return strings.Contains(errw.String(), "Password: ") })
	ptm.Write([]byte("Typed-Secret\n"))
	waitFor(t, "second prompt", 10*time.Second, func() bool { return strings.Contains(errw.String(), "Again: ") })
	ptm.Write([]byte("Typed-Secret\n"))
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("user add: %s", errw.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("user add did not finish")
	}
	// Whatever the terminal echoed is readable on the controlling side.
	// Poll, then read raw: a pty's os.File may not support deadlines.
	echo := make([]byte, 4096)
	n := 0
	fds := []unix.PollFd{{Fd: int32(ptm.Fd()), Events: unix.POLLIN}}
	if k, _ := unix.Poll(fds, 200); k > 0 {
		n, _ = unix.Read(int(ptm.Fd()), echo)
	}
	if n > 0 && bytes.Contains(echo[:n], []byte("Typed-Secret")) {
		t.Fatalf("the password was echoed: %q", echo[:n])
	}
	// Echo is back on afterwards.
	tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Fatalf("echo not restored: %v", err)
	}
	_, list, _ := runCmd(t, "", "user", "list", "--config", cfg)
	if !strings.Contains(list, "dave") {
		t.Fatalf("dave not added: %q", list)
	}
}

func TestUserAddPromptMismatch(t *testing.T) {
	ptm, pts := openPTY(t)
	t.Chdir(t.TempDir())
	cfg := writeConfig(t, "data_dir: "+filepath.Join(t.TempDir(), "data")+"\n")
	errw := &lockedWriter{b: &bytes.Buffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(testGlobals(), []string{"user", "add", "erin", "--config", cfg}, pts, &bytes.Buffer{}, errw)
	}()
	waitFor(t, "first prompt", 10*time.Second, func() bool { return strings.Contains(errw.String(), "Password: ") })
	ptm.Write([]byte("one\n"))
	waitFor(t, "second prompt", 10*time.Second, func() bool { return strings.Contains(errw.String(), "Again: ") })
	ptm.Write([]byte("two\n"))
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(errw.String(), "differ") {
			t.Fatalf("code %d: %s", code, errw.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("user add did not finish")
	}
}
