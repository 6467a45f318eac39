package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// percentiles computes nearest-rank percentiles (rank = ceil(p/100 * n)) of
// lats, which it sorts in place.
func percentiles(lats []time.Duration) Latency {
	if len(lats) == 0 {
		return Latency{}
	}
	slices.Sort(lats)
	return Latency{
		P50: nearestRank(lats, 50),
		P90: nearestRank(lats, 90),
		P99: nearestRank(lats, 99),
		Max: lats[len(lats)-1],
	}
}

// nearestRank returns the smallest value with at least p percent of the
// sorted values at or below it.
func nearestRank(sorted []time.Duration, p int) time.Duration {
	n := len(sorted)
	rank := (p*n + 99) / 100 // ceil(p*n/100) in integers
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// run gathers what the workers of one scenario measure. Counters are
// atomic so the progress line can read them; each worker keeps its own
// latency slice and hands it over when it ends.
type run struct {
	ops, bytes, nerrs atomic.Int64
	// first and last bound the operations themselves (UnixNano), for
	// scenarios whose rate must not include logging in; see window.
	first, last atomic.Int64

	mu     sync.Mutex
	errs   map[string]int64
	lats   []time.Duration
	extra  map[string]any
	start  time.Time
	sample *MemSampler
}

func newRun(pid int) *run {
	r := &run{errs: map[string]int64{}, extra: map[string]any{}}
	if pid > 0 {
		r.sample = SampleMemory(pid, 0)
	}
	r.start = time.Now()
	return r
}

// fail counts one error under kind.
func (r *run) fail(kind string) {
	r.nerrs.Add(1)
	r.mu.Lock()
	r.errs[kind]++
	r.mu.Unlock()
}

// window marks operations between t0 and t1; once any is marked, the
// result's Elapsed and rates span the operations only, and the whole run
// goes to Extra "run_elapsed_ns".
func (r *run) window(t0, t1 time.Time) {
	for a, b := t0.UnixNano(), r.first.Load(); b == 0 || a < b; b = r.first.Load() {
		if r.first.CompareAndSwap(b, a) {
			break
		}
	}
	for a, b := t1.UnixNano(), r.last.Load(); a > b; b = r.last.Load() {
		if r.last.CompareAndSwap(b, a) {
			break
		}
	}
}

// addLatencies merges one worker's latencies.
func (r *run) addLatencies(l []time.Duration) {
	r.mu.Lock()
	r.lats = append(r.lats, l...)
	r.mu.Unlock()
}

// result closes the run: elapsed time, rates, percentiles, memory.
func (r *run) result(scenario, name string, params map[string]any) Result {
	elapsed := time.Since(r.start)
	if first, last := r.first.Load(), r.last.Load(); first != 0 && last > first {
		r.extra["run_elapsed_ns"] = int64(elapsed)
		elapsed = time.Duration(last - first)
	}
	var mem *Memory
	if r.sample != nil {
		m := r.sample.Stop()
		mem = &m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Scenario: scenario,
		Name:     name,
		Params:   params,
		Ops:      r.ops.Load(),
		Bytes:    r.bytes.Load(),
		Elapsed:  elapsed,
		Latency:  percentiles(r.lats), // sorts r.lats
		Samples:  r.lats,
		Server:   mem,
	}
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = float64(res.Ops) / s
		res.MBPerSec = float64(res.Bytes) / 1e6 / s
	}
	if len(r.errs) > 0 {
		res.Errors = r.errs
	}
	if len(r.extra) > 0 {
		res.Extra = r.extra
	}
	return res
}

// progress writes one line per second to w until the returned stop is
// called, e.g. "smtp c=20: 3120/5000 msgs, 812/s, errors 0".
func (r *run) progress(w io.Writer, label string, total int64, unit string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				ops := r.ops.Load()
				rate := float64(ops) / time.Since(r.start).Seconds()
				of := ""
				if total > 0 {
					of = fmt.Sprintf("/%d", total)
				}
				fmt.Fprintf(w, "%s: %d%s %s, %.0f/s, errors %d\n", label, ops, of, unit, rate, r.nerrs.Load())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// errKind names an I/O failure for Result.Errors.
func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "dial"
	}
	return "io"
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// sizeLabel writes 4096 as "4KiB" and 25000000 as "25000000B".
func sizeLabel(n int) string {
	if n > 0 && n%1024 == 0 {
		if n%(1024*1024) == 0 {
			return fmt.Sprintf("%dMiB", n/(1024*1024))
		}
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}
