package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testserver"
)

// freeLoopback returns a loopback address whose port was free a moment ago.
func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServePprof(t *testing.T) {
	bin := testserver.Binary(t)
	addr := freeLoopback(t)
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"-s", "127.0.0.1:0", "-p", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0", "--pprof", addr)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "BUZON_ADMIN_PASSWORD=Init1al")
	lw := &lockedWriter{b: &bytes.Buffer{}}
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	waitFor(t, "start", 20*time.Second, func() bool { return strings.Contains(lw.String(), "buzon started") })
	if want := "protocol=pprof addr=" + addr; !strings.Contains(lw.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, lw.String())
	}
	if strings.Contains(lw.String(), "reachable from other hosts") {
		t.Errorf("loopback address warned about:\n%s", lw.String())
	}

	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %s, %d bytes", path, resp.Status, len(body))
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, lw.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not stopped 15 s after SIGTERM")
	}
	// The port is free again: the HTTP server went down with the rest.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("pprof port still held after exit: %v", err)
	}
	l.Close()
}

func TestServePprofBadAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bin := testserver.Binary(t)
	for _, addr := range []string{busy.Addr().String(), "127.0.0.1:notaport"} {
		cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(t.TempDir(), "data"),
			"-s", "127.0.0.1:0", "-p", "127.0.0.1:0", "--pop3-listen", "127.0.0.1:0", "--pprof", addr)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "BUZON_ADMIN_PASSWORD=Init1al")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("--pprof %s: exit %v\n%s", addr, err, out)
		}
		if want := "buzon: pprof listen " + addr + ": "; !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
