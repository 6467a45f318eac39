package atomicfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func temps(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(TempPattern(path))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteFileCreatesAndReplaces(t *testing.T) {
	for _, tt := range []struct {
		perm, want fs.FileMode
	}{{0, 0o600}, {0o600, 0o600}, {0o640, 0o640}} {
		path := filepath.Join(t.TempDir(), "f.json")
		if err := WriteFile(path, []byte("one"), tt.perm); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(path, []byte("two"), tt.perm); err != nil {
			t.Fatal(err)
		}
		if got := read(t, path); got != "two" {
			t.Fatalf("content %q", got)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tt.want {
			t.Fatalf("perm %v, want %v", fi.Mode().Perm(), tt.want)
		}
		if m := temps(t, path); len(m) != 0 {
			t.Fatalf("temporary files left: %v", m)
		}
	}
}

func TestWriteEmptyAndRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := WriteFile("rel", nil, 0); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "rel")); got != "" {
		t.Fatalf("content %q", got)
	}
}

// TestWritePoints checks what a reader sees at each step: the old content
// until the rename, the new one from then on.
func TestWritePoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteFile(path, []byte("old"), 0); err != nil {
		t.Fatal(err)
	}
	var seen []string
	f, err := Write(path, []byte("new content"), Options{Hook: func(p Point) {
		seen = append(seen, string(p)+"="+read(t, path)+fmt.Sprintf("/%d", len(temps(t, path))))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []string{"partial=old/1", "before-rename=old/1", "before-dirsync=new content/0"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Fatalf("seen %q, want %q", seen, want)
	}
	// The returned file is the new version.
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fi, pi) {
		t.Fatal("returned file is not the one at path")
	}
}

func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename fails.
	path := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, []byte("data"), 0)
	if err == nil {
		t.Fatal("write over a directory succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file", err)
	}
	if m := temps(t, path); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	// A missing directory fails at once.
	if err := WriteFile(filepath.Join(dir, "nodir", "f"), []byte("x"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := Remove(path); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	if err := WriteFile(path, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("still there: %v", err)
	}
	if err := SyncDir(filepath.Join(path, "none")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func TestRemoveTempsOnlyOwn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users[1].json") // glob metacharacters in the name
	keep := []string{"users[1].json", ".users[1].json", ".other.json.1.tmp", "users1.json.2.tmp"}
	stale := []string{".users[1].json.123.tmp", ".users[1].json.9.tmp"}
	for _, n := range append(keep, stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveTemps(path)
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s kept", n)
		}
	}
}

const envCrashPath = "BUZON_ATOMICFILE_CRASH_PATH"

// TestHelperWriter is not a test: it is the child of TestCrashNeverTruncates,
// rewriting the file in a loop with versions of varying length and
// printing each number once its write returned.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(envCrashPath)
	if path == "" {
		t.Skip("helper process only")
	}
	for i := 1; i < 1_000_000; i++ {
		if err := WriteFile(path, version(i), 0); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Println(i)
	}
}

// version i is a self-checking content: its number, then i%4000 bytes of
// padding, then the number again.
func version(i int) []byte {
	n := strconv.Itoa(i)
	return []byte(n + "|" + strings.Repeat("x", i%4000) + "|" + n + "\n")
}

// TestCrashNeverTruncates SIGKILLs a writer at several moments: the file
// always holds one whole version, at least the last one reported written.
func TestCrashNeverTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "counters.json")
	for round, after := range []int{1, 3, 10, 30} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashPath+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		last := 0
		deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		for last < after && sc.Scan() {
			if last, err = strconv.Atoi(sc.Text()); err != nil {
				t.Fatalf("helper: %s", sc.Text())
			}
		}
		deadline.Stop()
		if last < after {
			t.Fatalf("round %d: helper stopped after %d writes", round, last)
		}
		cmd.Process.Kill()
		for sc.Scan() { // what it reported before dying
			if n, err := strconv.Atoi(sc.Text()); err == nil {
				last = n
			}
		}
		cmd.Wait()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := bytes.Cut(b, []byte("|"))
		n, err := strconv.Atoi(string(first))
		if err != nil || !bytes.Equal(b, version(n)) {
			t.Fatalf("round %d: torn file %q", round, b)
		}
		if n < last || n > last+1 {
			t.Fatalf("round %d: file holds version %d, last reported %d", round, n, last)
		}
		RemoveTemps(path) // the writer may have died holding one
	}
	if m := temps(t, path); len(m) != 0 {
		t.Fatalf("RemoveTemps left %v", m)
	}
}

func TestMkdirAll(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	for range 2 { // the second call finds everything there
		if err := MkdirAll(deep, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{filepath.Join(root, "a"), filepath.Join(root, "a", "b"), deep} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v", d, fi.Mode())
		}
	}
	file := filepath.Join(root, "file")
	if err := WriteFile(file, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(file, 0o700); err == nil {
		t.Fatal("MkdirAll over a file succeeded")
	}
	if err := MkdirAll(filepath.Join(file, "sub"), 0o700); err == nil {
		t.Fatal("MkdirAll below a file succeeded")
	}
}
