package users

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/atomicfile"
	"golang.org/x/crypto/bcrypt"
)

// Environment of the helper process (this test binary run again).
const (
	envHelperDir    = "BUZON_USERS_HELPER_DIR"
	envHelperMode   = "BUZON_USERS_HELPER_MODE" // "loop" or "hang"
	envHelperPrefix = "BUZON_USERS_HELPER_PREFIX"
	envHelperCount  = "BUZON_USERS_HELPER_COUNT"
	envHelperPoint  = "BUZON_USERS_HELPER_POINT"
)

// TestHelperUserWriter is not a test: it is the child process of the crash
// and cross-process tests. In "loop" mode it adds users <prefix>0, <prefix>1,
// … and prints "added NAME" after each Add returned; in "hang" mode it adds
// one user "victim" and stops forever at the named point of the atomic
// write, after printing "at POINT".
func TestHelperUserWriter(t *testing.T) {
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir, Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	switch os.Getenv(envHelperMode) {
	case "loop":
		prefix := os.Getenv(envHelperPrefix)
		n, _ := strconv.Atoi(os.Getenv(envHelperCount))
		for i := range n {
			name := prefix + strconv.Itoa(i)
			if err := s.Add(name, "pw-"+name, false); err != nil {
				fmt.Println("error", err)
				os.Exit(3)
			}
			fmt.Println("added", name)
		}
	case "hang":
		point := os.Getenv(envHelperPoint)
		s.writeHook = func(p atomicfile.Point) {
			if string(p) == point {
				fmt.Println("at", p)
				select {} // wait for SIGKILL
			}
		}
		err := s.Add("victim", "pw-victim", false)
		fmt.Println("error: Add returned", err)
		os.Exit(3)
	}
}

type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startHelper(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUserWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
		close(c.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// next returns the child's next output line, failing the test at the
// deadline or when the child's output ends.
func (c *child) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("helper exited early")
		}
		if strings.HasPrefix(l, "error") {
			t.Fatalf("helper: %s", l)
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("helper silent for 20s")
	}
	return ""
}

// kill SIGKILLs the child and returns the lines it wrote before dying.
func (c *child) kill(t *testing.T) []string {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rest := c.drain()
	c.cmd.Wait()
	return rest
}

// drain reads the child's output to its end (Wait must not run before).
func (c *child) drain() []string {
	var rest []string
	for l := range c.lines {
		rest = append(rest, l)
	}
	return rest
}

// checkStore decodes the file directly (no Store) and returns its users.
func checkStore(t *testing.T, dir string) db {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "users.json"))
	if err != nil {
		t.Fatalf("read store: %v", err)
	}
	d, err := decode(data)
	if err != nil {
		t.Fatalf("store does not parse after a crash: %v\n%q", err, data)
	}
	return d
}

// TestCrashMidWriteLoop kills a child that adds users in a tight loop at
// several moments; the store must always parse and hold every user whose
// Add had returned.
func TestCrashMidWriteLoop(t *testing.T) {
	dir := t.TempDir()
	confirmed := map[string]bool{}
	// Kill after a varying number of completed adds and a varying delay
	// (not to synchronise: to land at different points of the next Add).
	delays := []time.Duration{0, 3 * time.Millisecond, 0, 11 * time.Millisecond, 5 * time.Millisecond}
	for round, after := range []int{1, 2, 4, 7, 11} {
		c := startHelper(t, envHelperDir+"="+dir, envHelperMode+"=loop",
			envHelperPrefix+"=r"+strconv.Itoa(round)+"u", envHelperCount+"=100000")
		for range after {
			confirmed[strings.TrimPrefix(c.next(t), "added ")] = true
		}
		time.Sleep(delays[round])
		for _, l := range c.kill(t) { // what it reported before dying
			if name, ok := strings.CutPrefix(l, "added "); ok {
				confirmed[name] = true
			}
		}
		d := checkStore(t, dir)
		for name := range confirmed {
			if _, ok := d[name]; !ok {
				t.Fatalf("round %d: %s was added but is missing", round, name)
			}
		}
	}
	// A Store opened afterwards works, authenticates the survivors and
	// clears any temporary file a dead writer left.
	s := openTest(t, dir, Options{})
	for name := range confirmed {
		if _, err := s.Authenticate(context.Background(), name, "pw-"+name); err != nil {
			t.Fatalf("Authenticate(%s) after crashes: %v", name, err)
		}
		break
	}
	mustAdd(t, s, "after", "pw", false)
	if m, _ := filepath.Glob(atomicfile.TempPattern(filepath.Join(dir, storeFile))); len(m) != 0 {
		t.Fatalf("temporary files left after a write: %v", m)
	}
}

// TestCrashAtWritePoints stops the child at each step of the atomic write,
// SIGKILLs it there, and checks the store holds the old or the new content
// in full.
func TestCrashAtWritePoints(t *testing.T) {
	for _, tt := range []struct {
		point      string
		wantVictim bool
	}{
		{"partial", false},       // temp file half written
		{"before-rename", false}, // temp file complete and fsynced
		{"before-dirsync", true}, // renamed, directory not yet fsynced
	} {
		t.Run(tt.point, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, Options{})
			mustAdd(t, s, "bob", "pw", true)
			c := startHelper(t, envHelperDir+"="+dir, envHelperMode+"=hang", envHelperPoint+"="+tt.point)
			if l := c.next(t); l != "at "+tt.point {
				t.Fatalf("helper said %q", l)
			}
			c.kill(t)
			d := checkStore(t, dir)
			if _, ok := d["bob"]; !ok {
				t.Fatal("earlier user lost")
			}
			if _, ok := d["victim"]; ok != tt.wantVictim {
				t.Fatalf("victim present = %v, want %v", ok, tt.wantVictim)
			}
			// The lock died with the child: this Store can write at once,
			// and sees the child's change if it landed.
			mustAdd(t, s, "carol", "pw", false)
			if _, err := s.Lookup("victim"); (err == nil) != tt.wantVictim {
				t.Fatalf("Lookup(victim) = %v", err)
			}
			if m, _ := filepath.Glob(atomicfile.TempPattern(filepath.Join(dir, storeFile))); len(m) != 0 {
				t.Fatalf("temporary files left: %v", m)
			}
		})
	}
}

// TestCrossProcessAdds runs a child process adding users while this process
// adds others to the same store: nobody's change is lost.
func TestCrossProcessAdds(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	const n = 12
	c := startHelper(t, envHelperDir+"="+dir, envHelperMode+"=loop",
		envHelperPrefix+"=child", envHelperCount+"="+strconv.Itoa(n))
	for i := range n {
		mustAdd(t, s, "parent"+strconv.Itoa(i), "pw", false)
	}
	for range n {
		c.next(t)
	}
	c.drain()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if got, _ := s.Count(); got != 2*n {
		t.Fatalf("Count = %d, want %d", got, 2*n)
	}
	if _, err := s.Authenticate(context.Background(), "child7", "pw-child7"); err != nil {
		t.Fatalf("child's user: %v", err)
	}
}
