package throttle

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

// fakeClock is a settable clock for the window logic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTest(opts Options) (*Throttle, *fakeClock) {
	th := New(opts)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	th.now = clk.now
	return th, clk
}

func TestDelayGrowth(t *testing.T) {
	th := New(Options{BaseDelay: time.Millisecond, MaxDelay: 8 * time.Millisecond})
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		if got := th.delay(i + 1); got != w*time.Millisecond {
			t.Errorf("delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	// No overflow for absurd counts.
	if got := th.delay(1 << 20); got != 8*time.Millisecond {
		t.Errorf("delay(huge) = %v", got)
	}
}

func TestDefaults(t *testing.T) {
	th := New(Options{})
	o := th.opts
	if o.BaseDelay != time.Second || o.MaxDelay != 15*time.Second || o.CloseAfter != 10 ||
		o.Window != 15*time.Minute || o.MaxEntries != 100000 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestFailureWaitsAndCloses(t *testing.T) {
	th, _ := newTest(Options{BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond, CloseAfter: 3})
	a := tcp("192.0.2.1:1000")
	start := time.Now()
	if th.Failure(context.Background(), a) {
		t.Fatal("closed after 1 failure")
	}
	if el := time.Since(start); el < 10*time.Millisecond {
		t.Fatalf("first failure waited only %v", el)
	}
	if th.Blocked(a) {
		t.Fatal("blocked too early")
	}
	// Another port of the same address is the same client.
	start = time.Now()
	if th.Failure(context.Background(), tcp("192.0.2.1:2000")) {
		t.Fatal("closed after 2 failures")
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Fatalf("second failure waited only %v, want the doubled delay", el)
	}
	if !th.Failure(context.Background(), a) {
		t.Fatal("not closed after CloseAfter failures")
	}
	if !th.Blocked(tcp("192.0.2.1:3000")) {
		t.Fatal("not blocked after CloseAfter failures")
	}
	if th.Blocked(tcp("192.0.2.2:1000")) {
		t.Fatal("another address is blocked")
	}
	th.Success(a)
	if th.Blocked(a) || th.Len() != 0 {
		t.Fatal("Success did not forget the address")
	}
}

func TestFailureReturnsWhenContextEnds(t *testing.T) {
	th := New(Options{BaseDelay: time.Hour, MaxDelay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		th.Failure(ctx, tcp("192.0.2.1:1"))
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Failure kept waiting after ctx ended")
	}
}

func TestWindowForgets(t *testing.T) {
	th, clk := newTest(Options{BaseDelay: time.Microsecond, MaxDelay: time.Microsecond, CloseAfter: 2, Window: time.Minute})
	a := tcp("192.0.2.7:25")
	ctx := context.Background()
	th.Failure(ctx, a)
	th.Failure(ctx, a)
	if !th.Blocked(a) {
		t.Fatal("not blocked")
	}
	clk.add(time.Minute)
	if th.Blocked(a) {
		t.Fatal("still blocked after Window")
	}
	if th.Failure(ctx, a) {
		t.Fatal("failures older than Window still counted")
	}
	if th.Len() != 1 {
		t.Fatalf("Len = %d after prune, want 1", th.Len())
	}
}

func TestPruneAndCap(t *testing.T) {
	th, clk := newTest(Options{BaseDelay: time.Nanosecond, MaxDelay: time.Nanosecond, CloseAfter: 2, Window: time.Minute, MaxEntries: 100})
	ctx := context.Background()
	// An attacker cycling through addresses: the map never exceeds the cap.
	for i := range 1000 {
		th.Failure(ctx, tcp(fmt.Sprintf("10.0.%d.%d:1", i/256, i%256)))
		clk.add(time.Millisecond)
		if th.Len() > 100 {
			t.Fatalf("Len %d over the cap", th.Len())
		}
	}
	// The oldest were evicted, the newest kept.
	th.mu.Lock()
	_, oldKept := th.entries[keyOf(tcp("10.0.0.0:1"))]
	_, newKept := th.entries[keyOf(tcp("10.0.3.231:1"))] // i = 999
	th.mu.Unlock()
	if oldKept || !newKept {
		t.Fatalf("eviction order: oldest kept %v, newest kept %v", oldKept, newKept)
	}
	// A repeat offender is moved to the back and survives newer single failures.
	bad := tcp("198.51.100.1:1")
	th.Failure(ctx, bad)
	th.Failure(ctx, bad)
	for i := range 50 {
		th.Failure(ctx, tcp(fmt.Sprintf("10.1.0.%d:1", i)))
	}
	if !th.Blocked(bad) {
		t.Fatal("recent offender evicted before older entries")
	}
	// After Window everything is pruned at the next failure.
	clk.add(2 * time.Minute)
	th.Failure(ctx, tcp("203.0.113.5:1"))
	if th.Len() != 1 {
		t.Fatalf("Len = %d after Window, want 1", th.Len())
	}
}

func TestKeys(t *testing.T) {
	same := [][2]string{
		{"192.0.2.1:1", "192.0.2.1:2"},
		{"192.0.2.1:1", "[::ffff:192.0.2.1]:2"},             // IPv4-mapped is IPv4
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2"}, // same /64
		{"[fe80::1%eth0]:1", "[fe80::1]:2"},
	}
	for _, p := range same {
		if keyOf(tcp(p[0])) != keyOf(tcp(p[1])) {
			t.Errorf("%s and %s must share a key", p[0], p[1])
		}
	}
	diff := [][2]string{
		{"192.0.2.1:1", "192.0.2.2:1"},
		{"[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1"},
		{"[::1]:1", "127.0.0.1:1"},
	}
	for _, p := range diff {
		if keyOf(tcp(p[0])) == keyOf(tcp(p[1])) {
			t.Errorf("%s and %s must not share a key", p[0], p[1])
		}
	}
	// Non-TCP addresses do not panic.
	keyOf(nil)
	keyOf(&net.UnixAddr{Name: "/x", Net: "unix"})
	keyOf(&net.UDPAddr{IP: net.IPv4(1, 2, 3, 4)})
}

func TestConcurrent(t *testing.T) {
	th := New(Options{BaseDelay: time.Microsecond, MaxDelay: time.Microsecond, CloseAfter: 1000, MaxEntries: 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				a := tcp(fmt.Sprintf("10.9.%d.%d:1", g, i%20))
				th.Failure(context.Background(), a)
				th.Blocked(a)
				if i%7 == 0 {
					th.Success(a)
				}
			}
		}()
	}
	wg.Wait()
	if th.Len() > 10 {
		t.Fatalf("Len %d over the cap", th.Len())
	}
}
