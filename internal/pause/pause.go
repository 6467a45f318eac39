// Package pause holds the MGMT pause (TIMEOUT): while active, new SMTP and
// POP3 connections are refused with a temporary failure. Open sessions are
// not affected. A pause never survives a restart: it lives in memory only.
package pause

import "time"

// Gate is safe for concurrent use. The zero value is not usable; use New.
type Gate struct {
}

// New returns an inactive gate.
func New() *Gate { panic("unimplemented") }

// Pause starts a pause of d, or moves the end of the current one to the later
// of the two ends. The returned channel is closed when the pause actually
// ends (on time, or by Resume), so every waiting TIMEOUT is answered then.
func (g *Gate) Pause(d time.Duration) <-chan struct{} { panic("unimplemented") }

// Resume ends the pause now; false if none was active.
func (g *Gate) Resume() bool { panic("unimplemented") }

// Active reports whether new mail connections must be refused now.
func (g *Gate) Active() bool { panic("unimplemented") }

// Remaining is the time left, 0 when not paused.
func (g *Gate) Remaining() time.Duration { panic("unimplemented") }
