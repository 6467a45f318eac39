package pause

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func waitClosed(t *testing.T, c <-chan struct{}, within time.Duration) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(within):
		t.Fatalf("pause channel not closed within %v", within)
	}
}

func TestInactive(t *testing.T) {
	g := New()
	if g.Active() || g.Remaining() != 0 || g.Resume() {
		t.Fatal("new gate must be inactive")
	}
	if c := g.Pause(0); !closed(c) {
		t.Fatal("Pause(0) without a pause must return a closed channel")
	}
	if g.Active() {
		t.Fatal("Pause(0) must not pause")
	}
}

func TestPauseEndsOnTime(t *testing.T) {
	g := New()
	start := time.Now()
	c := g.Pause(50 * time.Millisecond)
	if !g.Active() {
		t.Fatal("not active after Pause")
	}
	if r := g.Remaining(); r <= 0 || r > 50*time.Millisecond {
		t.Fatalf("Remaining = %v", r)
	}
	waitClosed(t, c, 5*time.Second)
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("pause ended early")
	}
	if g.Active() || g.Remaining() != 0 {
		t.Fatal("still active after the end")
	}
	if g.Resume() {
		t.Fatal("Resume after the end must report false")
	}
}

func TestExtendReleasesAllWaitersAtFinalEnd(t *testing.T) {
	g := New()
	first := g.Pause(30 * time.Millisecond)
	start := time.Now()
	second := g.Pause(200 * time.Millisecond) // later end: extends
	if first != second {
		t.Fatal("an extended pause must hand out the same channel")
	}
	shorter := g.Pause(10 * time.Millisecond) // earlier end: no change
	if shorter != first {
		t.Fatal("a shorter pause must join the current one")
	}
	if r := g.Remaining(); r < 150*time.Millisecond {
		t.Fatalf("shorter pause shortened the current one: %v left", r)
	}
	// Many waiters, all released together at the final end.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ends []time.Duration
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-first
			mu.Lock()
			ends = append(ends, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, e := range ends {
		if e < 200*time.Millisecond {
			t.Fatalf("a waiter was released after %v, before the extended end", e)
		}
	}
	if g.Active() {
		t.Fatal("active after the end")
	}
}

func TestResume(t *testing.T) {
	g := New()
	c1 := g.Pause(time.Hour)
	c2 := g.Pause(2 * time.Hour)
	if closed(c1) {
		t.Fatal("closed too early")
	}
	if !g.Resume() {
		t.Fatal("Resume of an active pause must report true")
	}
	if !closed(c1) || !closed(c2) {
		t.Fatal("Resume must release every waiter at once")
	}
	if g.Active() || g.Remaining() != 0 {
		t.Fatal("active after Resume")
	}
	if g.Resume() {
		t.Fatal("second Resume must report false")
	}
	// A new pause after Resume is a new pause with a new channel.
	c3 := g.Pause(20 * time.Millisecond)
	if c3 == c1 || closed(c3) {
		t.Fatal("new pause must get a fresh channel")
	}
	waitClosed(t, c3, 5*time.Second)
}

func TestNoGoroutineLeak(t *testing.T) {
	g := New()
	before := runtime.NumGoroutine()
	for range 1000 {
		g.Pause(time.Hour)
		g.Pause(2 * time.Hour)
		g.Resume()
	}
	// Stopped timers hold no goroutine; allow the runtime a moment.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestHugeDuration(t *testing.T) {
	g := New()
	g.Pause(time.Duration(1<<63 - 1))
	if !g.Active() || g.Remaining() <= 0 {
		t.Fatal("a huge pause must be active, not overflow into the past")
	}
	if !g.Resume() {
		t.Fatal("Resume")
	}
}

func TestConcurrent(t *testing.T) {
	g := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				switch (i + j) % 4 {
				case 0:
					g.Pause(time.Duration(j%5+1) * time.Millisecond)
				case 1:
					g.Resume()
				case 2:
					g.Active()
				case 3:
					g.Remaining()
				}
			}
		}()
	}
	wg.Wait()
	c := g.Pause(time.Millisecond)
	waitClosed(t, c, 5*time.Second)
	if g.Active() {
		t.Fatal("active after the last pause ended")
	}
}
