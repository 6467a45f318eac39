package smtp

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// BenchmarkLargeMessage sends a 25,000,000-byte message per iteration
// through a real socket into the real Maildir store and reports the peak
// live heap seen while it streams: the message is never held whole in
// memory, so the peak stays far below its size.
func BenchmarkLargeMessage(b *testing.B) {
	const size = 25_000_000
	h := start(b, func(o *Options) { o.MaxMessageBytes = 26214400 })
	line := strings.Repeat("abcdefghij", 9) + "01234567\r\n"
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }

	runtime.GC()
	baseline := heap()
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := heap(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := gosmtp.Dial(h.mx)
		if err != nil {
			b.Fatal(err)
		}
		err = c.SendMail("x@remote.test", []string{"alice@example.org"}, io.LimitReader(&repeatReader{s: line}, size))
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dir := filepath.Join(h.mailRoot, "alice", "new")
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			os.Remove(filepath.Join(dir, e.Name()))
		}
		b.StartTimer()
	}
	b.StopTimer()
	close(done)
	<-sampled
	growth := float64(0)
	if p := peak.Load(); p > baseline {
		growth = float64(p - baseline)
	}
	b.ReportMetric(growth/(1<<20), "peak-heap-MiB")
}
