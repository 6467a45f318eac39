package smtp

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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
	clients := benchClients(b, 20)
	b.SetBytes(int64(len(message4K)))
	b.ResetTimer()
	lat, elapsed, err := sendAll(clients, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(percentile(lat, 0.50), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
}

// BenchmarkSMTPVersusDisk20 puts SMTP delivery next to the disk's own
// limit on a shared, noisy disk: it alternates rounds of 200 messages of
// the raw durable-write loop (20 goroutines each: create tmp/<unique>,
// write 4 KiB, fsync, close, rename into new/, fsync new/; as
// maildir.BenchmarkDiskLimit20) and of BenchmarkSMTPParallel20's traffic,
// b.N messages of each in all, so both see the same disk conditions. It
// reports both rates and SMTP's as a percentage of the disk's.
func BenchmarkSMTPVersusDisk20(b *testing.B) {
	const round = 200
	clients := benchClients(b, 20)
	dir := b.TempDir()
	for _, d := range []string{"tmp", "new"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	var diskTime, smtpTime time.Duration
	var lat []time.Duration
	var seq atomic.Int64
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		n := min(round, b.N-done)
		el, err := diskLoop(dir, &seq, 20, n)
		if err != nil {
			b.Fatal(err)
		}
		diskTime += el
		l, el, err := sendAll(clients, n)
		if err != nil {
			b.Fatal(err)
		}
		smtpTime += el
		lat = append(lat, l...)
	}
	b.StopTimer()
	disk, smtp := float64(b.N)/diskTime.Seconds(), float64(b.N)/smtpTime.Seconds()
	b.ReportMetric(disk, "disk-msgs/s")
	b.ReportMetric(smtp, "smtp-msgs/s")
	b.ReportMetric(100*smtp/disk, "smtp-%-of-disk")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
}

// benchClients starts a server (info logging into io.Discard) and opens n
// greeted client connections to its port 25.
func benchClients(b *testing.B, n int) []*gosmtp.Client {
	h := start(b, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	clients := make([]*gosmtp.Client, n)
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
	return clients
}

// sendAll sends n 4 KiB messages over all clients at once (even clients
// to alice, odd ones to bob) and returns each transaction's latency and
// the time taken.
func sendAll(clients []*gosmtp.Client, n int) ([]time.Duration, time.Duration, error) {
	var (
		next atomic.Int64
		mu   sync.Mutex
		lat  []time.Duration
		wg   sync.WaitGroup
	)
	errs := make(chan error, len(clients))
	start := time.Now()
	for i, c := range clients {
		rcpt := []string{"alice@example.org"}
		if i%2 == 1 {
			rcpt = []string{"bob@example.org"}
		}
		wg.Go(func() {
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for next.Add(1) <= int64(n) {
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
	close(errs)
	return lat, elapsed, <-errs
}

// diskLoop is the raw durable-write loop: n messages from workers
// goroutines into dir/tmp and dir/new.
func diskLoop(dir string, seq *atomic.Int64, workers, n int) (time.Duration, error) {
	tmp, newDir := filepath.Join(dir, "tmp"), filepath.Join(dir, "new")
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	one := func() error {
		name := strconv.FormatInt(seq.Add(1), 10)
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(message4K)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(filepath.Join(tmp, name), filepath.Join(newDir, name))
		}
		if err != nil {
			return err
		}
		d, err := os.Open(newDir)
		if err != nil {
			return err
		}
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		return err
	}
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := one(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// percentile of sorted-on-demand latencies, in milliseconds.
func percentile(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
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
