package pop3

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// idleConnBytes opens n connections to srv, reads each greeting and
// returns the growth of heap and stack in use per connection once all
// are idle, waiting for their next command. The client side's sockets are
// counted too, so this is an upper bound for the server's share.
func idleConnBytes(t testing.TB, srv *Server, n int) float64 {
	t.Helper()
	addr := startServer(t, srv)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var greeting [64]byte
	deadline := time.Now().Add(30 * time.Second)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		_ = c.SetReadDeadline(deadline)
		if _, err := io.ReadAtLeast(c, greeting[:], 5); err != nil || string(greeting[:3]) != "+OK" {
			t.Fatalf("greeting %d: %q %v", len(conns), greeting[:], err)
		}
	}
	// Every session has sent its greeting and flushed; wait until each is
	// registered and (by the deadline) back in its read.
	waitFor(t, "sessions registered", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.sessions) == n
	})
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap %d stack %d", int64(after.HeapInuse-before.HeapInuse)/int64(n), int64(after.StackInuse-before.StackInuse)/int64(n))
	grown := (after.HeapInuse + after.StackInuse) - (before.HeapInuse + before.StackInuse)
	return float64(grown) / float64(n)
}

// TestIdleConnectionMemory keeps the cost of an idle POP3 connection
// (issue 6: 10,000 idle connections under 25 KiB of RSS each) in check:
// no output buffer is held while waiting for a command, and one
// goroutine per connection.
func TestIdleConnectionMemory(t *testing.T) {
	const n = 300
	srv := newTestServer(newFakeStore())
	goroutines := runtime.NumGoroutine()
	per := idleConnBytes(t, srv, n)
	t.Logf("%.0f bytes of heap and stack per idle connection", per)
	if per > 20<<10 {
		t.Errorf("%.0f bytes per idle connection, want under 20 KiB", per)
	}
	// The accept loop adds one; each session adds exactly one.
	if g := runtime.NumGoroutine() - goroutines; g > n+1 {
		t.Errorf("%d goroutines for %d idle connections", g, n)
	}
}

// BenchmarkIdleConns reports the heap and stack per idle connection for
// 2,000 connections (b.N is not used: one measurement).
func BenchmarkIdleConns(b *testing.B) {
	per := idleConnBytes(b, newTestServer(newFakeStore()), 2000)
	for b.Loop() {
	}
	b.ReportMetric(per, "B/conn")
}
