package maildir

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLockHelperProcess is the child of TestLockAcrossProcesses: it takes
// the lock, says so, and holds it until killed.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv("BUZON_MAILDIR_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := New(filepath.Dir(dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Maildir(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	select {} // until killed
}

func TestLockAcrossProcesses(t *testing.T) {
	s := newStore(t, nil, "u")
	m, _ := s.Maildir("u")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), "BUZON_MAILDIR_LOCK_HELPER="+m.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	if _, err := m.Lock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("lock held by another process: %v", err)
	}
	if !m.Locked() {
		t.Fatal("Locked() false while another process holds it")
	}
	// A crash (SIGKILL) releases the lock: the kernel closes the file.
	cmd.Process.Kill()
	cmd.Wait()
	l, err := m.Lock()
	if err != nil {
		t.Fatalf("lock after the holder died: %v", err)
	}
	l.Release()
}
