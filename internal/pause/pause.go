// Package pause holds the MGMT pause (TIMEOUT): while active, new SMTP and
// POP3 connections are refused with a temporary failure. Open sessions are
// not affected. A pause never survives a restart: it lives in memory only.
//
// Active is on the accept path of every mail listener, so it reads a single
// atomic; Pause and Resume take a mutex. One timer at most exists at a time,
// and every channel handed out by Pause for the same pause is the same
// channel, closed once when the pause really ends.
package pause

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Gate is safe for concurrent use. The zero value is not usable; use New.
type Gate struct {
	// base is the monotonic origin of end: time.Since(base) never jumps with
	// the wall clock.
	base time.Time
	// end is the end of the current pause in nanoseconds since base; 0 when
	// not paused. Written under mu, read lock-free by Active and Remaining.
	end atomic.Int64

	mu    sync.Mutex
	done  chan struct{} // nil when not paused
	timer *time.Timer
	gen   uint64 // identifies the timer that may end the current pause
}

// New returns an inactive gate.
func New() *Gate { return &Gate{base: time.Now()} }

func (g *Gate) now() int64 {
	// +1 keeps "now" strictly positive, so end == 0 always means "not paused".
	return int64(time.Since(g.base)) + 1
}

// Pause starts a pause of d, or moves the end of the current one to the later
// of the two ends. The returned channel is closed when the pause actually
// ends (on time, or by Resume), so every waiting TIMEOUT is answered then.
// A pause of d <= 0 starts nothing: it returns the current pause's channel,
// or a closed one when there is none.
func (g *Gate) Pause(d time.Duration) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d <= 0 {
		if g.done != nil {
			return g.done
		}
		c := make(chan struct{})
		close(c)
		return c
	}
	now := g.now()
	if int64(d) > math.MaxInt64-now {
		d = time.Duration(math.MaxInt64 - now) // far beyond any TIMEOUT; no overflow
	}
	end := now + int64(d)
	if g.done != nil {
		if end <= g.end.Load() {
			return g.done // the current pause already lasts longer
		}
		g.timer.Stop()
	} else {
		g.done = make(chan struct{})
	}
	g.end.Store(end)
	g.gen++
	gen := g.gen
	g.timer = time.AfterFunc(time.Duration(end-now), func() { g.expire(gen) })
	return g.done
}

// expire ends the pause that the timer of generation gen was started for; a
// timer superseded by a later Pause or by Resume finds another generation
// and does nothing.
func (g *Gate) expire(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gen != g.gen || g.done == nil {
		return
	}
	g.endLocked()
}

func (g *Gate) endLocked() {
	g.gen++
	g.end.Store(0)
	close(g.done)
	g.done = nil
	g.timer = nil
}

// Resume ends the pause now; false if none was active.
func (g *Gate) Resume() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done == nil {
		return false
	}
	g.timer.Stop()
	g.endLocked()
	return true
}

// Active reports whether new mail connections must be refused now. It is
// true from Pause until the end time has passed or Resume is called (a
// timer that fires a little late does not prolong it).
func (g *Gate) Active() bool {
	end := g.end.Load()
	return end != 0 && g.now() < end
}

// Remaining is the time left, 0 when not paused.
func (g *Gate) Remaining() time.Duration {
	end := g.end.Load()
	if end == 0 {
		return 0
	}
	if left := end - g.now(); left > 0 {
		return time.Duration(left)
	}
	return 0
}
