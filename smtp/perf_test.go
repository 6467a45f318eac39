package smtp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/buzon-mail/buzon/internal/accounting"
)

// message4K is a 4 KiB message with CRLF line ends.
var message4K = func() []byte {
	var b bytes.Buffer
	b.WriteString("From: x@remote.test\r\nTo: alice@example.org\r\nSubject: bench\r\n\r\n")
	for b.Len() < 4096-80 {
		b.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	return b.Bytes()
}()

// BenchmarkSMTPParallel20 sends b.N 4 KiB messages over 20 concurrent
// go-smtp client connections, each sending many transactions, to an
// in-process server delivering durably into the real Maildir store (half
// the connections to alice, half to bob). It reports messages/s and the
// p50/p99 transaction latency (MAIL to the reply after the data).
// Logging is at info level into io.Discard, so formatting is paid as in
// `buzon serve`.
func BenchmarkSMTPParallel20(b *testing.B) {
	const workers = 20
	h := start(b, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	clients := make([]*gosmtp.Client, workers)
	for i := range clients {
		c, err := gosmtp.Dial(h.mx)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Hello("client.test"); err != nil {
			b.Fatal(err)
		}
		clients[i] = c
		b.Cleanup(func() { c.Close() })
	}
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
	)
	errs := make(chan error, workers)
	b.SetBytes(int64(len(message4K)))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		rcpt := []string{"alice@example.org"}
		if i%2 == 1 {
			rcpt = []string{"bob@example.org"}
		}
		wg.Go(func() {
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := c.SendMail("x@remote.test", rcpt, bytes.NewReader(message4K)); err != nil {
					errs <- err
					return
				}
				mine = append(mine, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// idleConns opens n SMTP connections to a server wired as `buzon serve`
// wires port 25 (the accounting listener under the SMTP server), waits
// until each has its greeting, and returns the growth of heap in use plus
// goroutine stacks, and of goroutines, divided by n.
func idleConns(tb testing.TB, n int) (bytesPerConn, goroutinesPerConn float64) {
	tb.Helper()
	h := start(tb, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	acct, err := accounting.New(accounting.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := acct.Listener(raw, accounting.ListenerOptions{Proto: accounting.SMTP, Refuse: h.srv.Refuse})
	go h.srv.Serve(l)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 512)
	for range n {
		c, err := net.DialTimeout("tcp", raw.Addr().String(), 5*time.Second)
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if k, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:k], []byte("220 ")) {
			tb.Fatalf("greeting: %q %v", buf[:k], err)
		}
	}
	// The client side's own memory is small (no goroutine, no buffer per
	// connection beyond the socket) and is counted too: the figure is an
	// upper bound for the server's share.
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	stack := float64(after.StackInuse) - float64(before.StackInuse)
	tb.Logf("per connection: %.0f bytes heap, %.0f bytes stack", (grown-stack)/float64(n), stack/float64(n))
	return grown / float64(n), float64(runtime.NumGoroutine()-g0) / float64(n)
}

// BenchmarkIdleConns reports the memory one idle, greeted SMTP connection
// costs the server (heap in use plus stacks), over 2,000 connections.
// One measurement per call whatever b.N is; run it with -benchtime=1x.
func BenchmarkIdleConns(b *testing.B) {
	per, gor := idleConns(b, 2000)
	b.ReportMetric(per, "B/conn")
	b.ReportMetric(gor, "goroutines/conn")
}

// TestIdleConnCost holds the per-connection cost of an idle session
// down: one goroutine (go-smtp's) and no per-connection watchdog.
func TestIdleConnCost(t *testing.T) {
	per, gor := idleConns(t, 200)
	t.Logf("%.0f bytes and %.2f goroutines per idle connection", per, gor)
	if gor > 1.05 {
		t.Errorf("%.2f goroutines per idle connection, want 1", gor)
	}
}
